"""`nox -s verify-image`: dockyard's image checklist on this project's image."""

import nox
from dockyard import sessions

verify_image = nox.session(name="verify-image", venv_backend="none")(sessions.verify_image)
