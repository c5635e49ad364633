-- ERP parties: customers (Cliente) and suppliers (Proveedor).
CREATE TABLE customer (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tax_id      text NOT NULL UNIQUE,
  name        text NOT NULL,
  email       text,
  phone       text,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customer_name_trgm_idx ON customer USING gin (name gin_trgm_ops);

CREATE TABLE supplier (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tax_id      text NOT NULL UNIQUE,
  name        text NOT NULL,
  email       text,
  created_at  timestamptz NOT NULL DEFAULT now()
);
