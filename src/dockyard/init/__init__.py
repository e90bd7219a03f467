"""`dockyard init`: adopt a uv project.

`project` reads what is there (pyproject.toml, the workspace, uv.lock, the sources, a compose file),
`infer` decides what the image needs and why, `render` fills the templates (package data under
`templates/`), and `apply` compares, shows and writes the files, and adds dockyard to the project.
"""
