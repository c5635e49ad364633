-- Storefront catalog with accent-insensitive search.
CREATE TABLE category (
  id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  slug    text NOT NULL UNIQUE,
  name    text NOT NULL,
  parent  bigint REFERENCES category (id)
);

CREATE TABLE listing (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  slug         text NOT NULL UNIQUE,
  title        text NOT NULL,
  description  text NOT NULL DEFAULT '',
  price_cents  integer NOT NULL CHECK (price_cents >= 0),
  currency     char(3) NOT NULL DEFAULT 'PEN',
  category_id  bigint REFERENCES category (id),
  published    boolean NOT NULL DEFAULT false
);
CREATE INDEX listing_title_trgm_idx ON listing USING gin (title gin_trgm_ops);
