"""The HTTP edge: the Starlette app, the webhook ingress, the admin API, the dashboard,
sign-in, the live hub behind the event streams, and the views with sensitive values
masked."""
