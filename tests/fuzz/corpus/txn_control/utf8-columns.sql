SELECT 'café', U&'\0041';
€; begin;