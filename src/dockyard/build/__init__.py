"""Making and shipping images: `buildkit` builds one image through the engine's BuildKit path (the
build CLI discovered, the CA bundle as a secret, caches imported and exported), `stack` builds a
Compose project's services, `push` sends an image's tags to its registry and reports what moved."""
