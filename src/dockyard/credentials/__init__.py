"""Credentials and build secrets in image content.

`pem` finds PEM blocks and tells real private-key material from a mention of one, `rules` is the
rule set for credentials in text (detect-secrets' detectors plus what they lack) with the redaction
every finding goes through, `layers` runs the rules over the layers of an image export as one of its
content hooks, and `fingerprint` matches the files of build secrets without holding them in memory.
"""
