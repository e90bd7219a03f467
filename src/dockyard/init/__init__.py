"""`dockyard init`: adopt a uv project.

`project` reads what is there (pyproject.toml, the workspace, uv.lock, the sources, a compose file),
`infer` decides what the image needs and why, `render` fills the templates (package data under
`templates/`), and `apply` compares, shows and writes the files, and adds dockyard to the project.
"""

# The uv image the Dockerfile names when the project pins no uv (provision.sh's uv stand-in is this
# version too). Here, not in `infer`, so `dockyard doctor` can read it without loading inference.
DEFAULT_UV_VERSION = "0.13.8"
