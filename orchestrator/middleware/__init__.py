"""The request path: every middleware a request meets before and after its
view, and the ASGI edge guard in front of Django. settings.MIDDLEWARE gives
their order; `base.DualMiddleware` is what they share."""
