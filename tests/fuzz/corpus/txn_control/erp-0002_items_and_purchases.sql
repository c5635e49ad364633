-- Items and purchases (Producto, Compra, DetalleCompra).
CREATE TABLE item (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  code        text NOT NULL UNIQUE,
  name        text NOT NULL,
  price       numeric(14,2) NOT NULL DEFAULT 0 CHECK (price >= 0),
  tax_rate    numeric(5,4) NOT NULL DEFAULT 0.18
);

CREATE TABLE purchase (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  supplier_id  bigint NOT NULL REFERENCES supplier (id),
  issued_on    date NOT NULL DEFAULT current_date,
  status       text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'received', 'cancelled'))
);

CREATE TABLE purchase_line (
  purchase_id  bigint NOT NULL REFERENCES purchase (id) ON DELETE CASCADE,
  line         integer NOT NULL,
  item_id      bigint NOT NULL REFERENCES item (id),
  quantity     numeric(12,3) NOT NULL CHECK (quantity > 0),
  unit_cost    numeric(14,2) NOT NULL,
  PRIMARY KEY (purchase_id, line)
);
