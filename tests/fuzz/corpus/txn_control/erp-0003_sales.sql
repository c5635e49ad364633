-- Sales (Venta, DetalleVenta) with a running invoice number per tenant.
CREATE SEQUENCE invoice_number_seq;

CREATE TABLE sale (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id  bigint NOT NULL REFERENCES customer (id),
  invoice_no   bigint NOT NULL UNIQUE DEFAULT nextval('invoice_number_seq'),
  issued_at    timestamptz NOT NULL DEFAULT now(),
  total        numeric(14,2) NOT NULL DEFAULT 0
);

CREATE TABLE sale_line (
  sale_id     bigint NOT NULL REFERENCES sale (id) ON DELETE CASCADE,
  line        integer NOT NULL,
  item_id     bigint NOT NULL REFERENCES item (id),
  quantity    numeric(12,3) NOT NULL CHECK (quantity > 0),
  unit_price  numeric(14,2) NOT NULL,
  PRIMARY KEY (sale_id, line)
);
