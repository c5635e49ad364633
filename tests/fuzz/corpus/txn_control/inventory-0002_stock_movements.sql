-- Every change of stock is a movement; the balance is their sum.
CREATE TABLE stock_movement (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  product_id    bigint NOT NULL REFERENCES product (id),
  warehouse_id  bigint NOT NULL REFERENCES warehouse (id),
  kind          text NOT NULL CHECK (kind IN ('in', 'out', 'adjustment', 'transfer')),
  quantity      numeric(12,3) NOT NULL,
  reference     text,
  moved_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stock_movement_product_idx ON stock_movement (product_id, warehouse_id);

CREATE VIEW stock_balance AS
  SELECT product_id, warehouse_id, sum(quantity) AS quantity
  FROM stock_movement
  GROUP BY product_id, warehouse_id;
