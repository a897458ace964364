#!/bin/sh
# Runs inside the node image's root filesystem (chroot for the offline recipe, RUN for the Dockerfile):
# creates the unprivileged task user and drops files a Batch node never needs.
set -eu

NODE_USER=batchuser
NODE_UID=1000
NODE_GID=1000

if ! getent group "$NODE_USER" >/dev/null; then
    groupadd --gid "$NODE_GID" "$NODE_USER"
fi
if ! getent passwd "$NODE_USER" >/dev/null; then
    useradd --uid "$NODE_UID" --gid "$NODE_GID" --create-home --home-dir "/home/$NODE_USER" \
        --shell /bin/bash "$NODE_USER"
fi

rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
    /var/cache/debconf/*-old /var/log/apt/* /var/log/dpkg.log /var/log/alternatives.log \
    /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* /usr/share/lintian/*
