"""Lambda handler for the HTTP API's $default route: every unknown route or wrong method gets
the OpenAI error shape (404 / 405) instead of API Gateway's own {"message": "Not Found"}."""

from aigw.adapters.aws import router_handler
from aigw.routes import ROUTES

handler = router_handler(ROUTES)
