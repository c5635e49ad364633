-- Lot and serial tracking, as the original product had (Lote, Serie).
CREATE TABLE lot (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  product_id  bigint NOT NULL REFERENCES product (id),
  code        text NOT NULL,
  expires_on  date,
  UNIQUE (product_id, code)
);

CREATE TABLE serial_number (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  product_id  bigint NOT NULL REFERENCES product (id),
  serial      text NOT NULL,
  lot_id      bigint REFERENCES lot (id),
  UNIQUE (product_id, serial)
);
ALTER TABLE stock_movement ADD COLUMN lot_id bigint REFERENCES lot (id);
