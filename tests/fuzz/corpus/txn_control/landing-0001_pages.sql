-- Landing pages: published pages and the leads their forms collect.
CREATE TABLE page (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  path          text NOT NULL UNIQUE CHECK (path LIKE '/%'),
  title         text NOT NULL,
  body_html     text NOT NULL DEFAULT '',
  published_at  timestamptz
);

CREATE TABLE lead (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  page_id     bigint REFERENCES page (id) ON DELETE SET NULL,
  name        text,
  email       text NOT NULL,
  message     text,
  created_at  timestamptz NOT NULL DEFAULT now()
);
