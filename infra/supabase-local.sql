-- Local stand-in for what a Supabase project provides and infra/supabase.sql relies on:
-- `supabase_functions.http_request`, the trigger function behind Database Webhooks. It
-- builds the same payload Supabase sends ({type, table, schema, record, old_record}) and
-- hands the request to the local PostgREST layer (a queue row plus a notification), which
-- POSTs it once after the transaction commits, without retries, as pg_net does. Never run
-- this in a real Supabase project: it would replace Supabase's own function.

create schema if not exists supabase_functions;

create table if not exists supabase_functions.pending_requests (
  id          bigserial primary key,
  request     jsonb not null,
  created_at  timestamptz not null default now()
);

create or replace function supabase_functions.http_request() returns trigger
language plpgsql as $$
declare
  request_id bigint;
  payload jsonb;
begin
  payload := jsonb_build_object(
    'old_record', old, 'record', new,
    'type', tg_op, 'table', tg_table_name, 'schema', tg_table_schema);
  insert into supabase_functions.pending_requests (request)
  values (jsonb_build_object(
    'url', tg_argv[0],
    'method', coalesce(tg_argv[1], 'POST'),
    'headers', coalesce(tg_argv[2], '{}')::jsonb,
    'params', coalesce(tg_argv[3], '{}')::jsonb,
    'timeout_ms', coalesce(tg_argv[4], '1000'),
    'payload', payload))
  returning id into request_id;
  perform pg_notify('supabase_functions_http', request_id::text);
  return new;
end
$$;
