-- The tables the sync writes to and reads from in a Supabase project.
-- Run it once in the project's SQL editor (or with psql against its database). The local
-- stack and the tests create their tables with this same file.
--
-- - Every row's id is text: rows the sync creates get a stable id derived from where the
--   record came from; rows you create yourself can keep the default.
-- - Money is numeric (exact), never a float. Addresses and order lines are jsonb, with
--   amounts inside as strings.
-- - updated_at is maintained by a trigger, and only moves when something else in the row
--   changed: the sync pages on (updated_at, id), and an unchanged rewrite must not look like
--   an edit.
-- - A deleted record is marked (deleted_at), not removed, so the deletion can be synced.
-- - source / source_id say where a row came from (for example woocommerce / 1042).
-- - Row level security is on with no policies: only the service key (which the sync uses)
--   reads and writes these tables.

create or replace function public.sync_touch_updated_at() returns trigger
language plpgsql as $$
begin
  if tg_op = 'UPDATE' and (to_jsonb(new) - 'updated_at') = (to_jsonb(old) - 'updated_at') then
    new.updated_at := old.updated_at;
  else
    new.updated_at := clock_timestamp();
  end if;
  return new;
end
$$;

create table if not exists public.customers (
  id          text primary key default gen_random_uuid()::text,
  email       text not null,
  first_name  text not null default '',
  last_name   text not null default '',
  billing     jsonb not null default '{}'::jsonb,
  shipping    jsonb not null default '{}'::jsonb,
  source      text,
  source_id   text,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now(),
  deleted_at  timestamptz
);
create unique index if not exists customers_email_key on public.customers (lower(email));
create index if not exists customers_updated_at_id on public.customers (updated_at, id);

create table if not exists public.products (
  id              text primary key default gen_random_uuid()::text,
  sku             text unique,
  name            text not null default '',
  description     text not null default '',
  price           numeric,
  sale_price      numeric,
  stock_quantity  integer,
  status          text not null default 'active' check (status in ('active', 'draft')),
  source          text,
  source_id       text,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  deleted_at      timestamptz
);
create index if not exists products_updated_at_id on public.products (updated_at, id);

create table if not exists public.orders (
  id                  text primary key default gen_random_uuid()::text,
  number              text not null default '',
  status              text not null default '',
  currency            text not null default '',
  customer_email      text,
  billing             jsonb not null default '{}'::jsonb,
  shipping            jsonb not null default '{}'::jsonb,
  lines               jsonb not null default '[]'::jsonb,
  shipping_lines      jsonb not null default '[]'::jsonb,
  fee_lines           jsonb not null default '[]'::jsonb,
  discount_total      numeric not null default 0,
  shipping_total      numeric not null default 0,
  total_tax           numeric not null default 0,
  total               numeric not null default 0,
  prices_include_tax  boolean not null default false,
  placed_at           timestamptz,
  paid_at             timestamptz,
  source              text,
  source_id           text,
  created_at          timestamptz not null default now(),
  updated_at          timestamptz not null default now(),
  deleted_at          timestamptz
);
create index if not exists orders_updated_at_id on public.orders (updated_at, id);

do $$
declare t text;
begin
  foreach t in array array['customers', 'products', 'orders'] loop
    execute format('drop trigger if exists %I on public.%I', t || '_touch_updated_at', t);
    execute format(
      'create trigger %I before insert or update on public.%I
         for each row execute function public.sync_touch_updated_at()',
      t || '_touch_updated_at', t);
    execute format('alter table public.%I enable row level security', t);
  end loop;
end
$$;

-- Database webhooks (Supabase dashboard: Database → Webhooks, or this SQL): each change is
-- POSTed to the connection's webhook URL with the shared secret in a header. Replace the
-- URL and the secret with your connection's `webhook_url` and `webhook_secret`. Only rows
-- that really changed are sent, so the sync's own unchanged rewrites cost nothing.
--
-- create trigger sync_products_changed
--   after insert or delete on public.products
--   for each row execute function supabase_functions.http_request(
--     'https://<api-id>.execute-api.<region>.amazonaws.com/webhooks/supabase/<connection-id>',
--     'POST',
--     '{"Content-Type": "application/json", "x-webhook-secret": "<webhook-secret>"}',
--     '{}',
--     '5000');
-- create trigger sync_products_updated
--   after update on public.products
--   for each row when (old.* is distinct from new.*)
--   execute function supabase_functions.http_request(
--     'https://<api-id>.execute-api.<region>.amazonaws.com/webhooks/supabase/<connection-id>',
--     'POST',
--     '{"Content-Type": "application/json", "x-webhook-secret": "<webhook-secret>"}',
--     '{}',
--     '5000');
--
-- (the same for customers; orders only if you sync orders out of Supabase).
