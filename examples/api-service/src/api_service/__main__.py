"""`python -m api_service`: the same as the `api-service` console script."""

from api_service.cli import main

main()
