// placeholder: replaced by the reconcile pass
