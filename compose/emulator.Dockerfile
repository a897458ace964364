# The batchbox Batch emulator as an image, for docker-compose.yml (machines that reach a container registry).
# Build context: the repository root. The emulator creates the node containers through the host's Docker
# socket, so the paths it bind-mounts into them must exist on the host: the entrypoint copies the node agent
# into the state directory, which compose mounts at the same path on both sides.
FROM python:3.12-slim

COPY pyproject.toml README.md package.json package-lock.json /src/
COPY batchbox /src/batchbox
RUN pip install --no-cache-dir /src && rm -rf /src

COPY compose/emulator-entrypoint.sh /usr/local/bin/batchbox-emulator-entrypoint
RUN chmod 0755 /usr/local/bin/batchbox-emulator-entrypoint

ENV BATCHBOX_STATE=/var/lib/batchbox
ENTRYPOINT ["batchbox-emulator-entrypoint"]
