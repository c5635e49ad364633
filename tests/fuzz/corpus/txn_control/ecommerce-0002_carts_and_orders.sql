CREATE TABLE shopper (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email       text NOT NULL UNIQUE,
  name        text,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shop_order (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  shopper_id   bigint NOT NULL REFERENCES shopper (id),
  status       text NOT NULL DEFAULT 'cart'
               CHECK (status IN ('cart', 'placed', 'paid', 'shipped', 'cancelled')),
  total_cents  integer NOT NULL DEFAULT 0,
  placed_at    timestamptz
);

CREATE TABLE order_line (
  order_id     bigint NOT NULL REFERENCES shop_order (id) ON DELETE CASCADE,
  listing_id   bigint NOT NULL REFERENCES listing (id),
  quantity     integer NOT NULL CHECK (quantity > 0),
  price_cents  integer NOT NULL,
  PRIMARY KEY (order_id, listing_id)
);
