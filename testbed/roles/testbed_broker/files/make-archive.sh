#!/bin/bash
# Index and sign one suite of an apt archive laid out like Debian's mirrors
# (and NeuroDebian's): ARCHIVE/pool/COMPONENT/... holds the .deb files,
# ARCHIVE/dists/SUITE gets Packages, Release, InRelease and Release.gpg,
# signed with the test bed's key (GNUPGHOME).
# Usage: make-archive.sh ARCHIVE SUITE COMPONENT ORIGIN
set -euo pipefail
archive=$1 suite=$2 component=$3 origin=$4
mkdir -p "$archive"
cd "$archive"
mkdir -p "pool/$component" "dists/$suite/$component/binary-amd64"
apt-ftparchive packages "pool/$component" > "dists/$suite/$component/binary-amd64/Packages"
gzip -9nkf "dists/$suite/$component/binary-amd64/Packages"
release=$(mktemp)
trap 'rm -f "$release"' EXIT
apt-ftparchive \
  -o APT::FTPArchive::Release::Origin="$origin" \
  -o APT::FTPArchive::Release::Label="$origin" \
  -o APT::FTPArchive::Release::Suite="$suite" \
  -o APT::FTPArchive::Release::Codename="$suite" \
  -o APT::FTPArchive::Release::Architectures=amd64 \
  -o APT::FTPArchive::Release::Components="$component" \
  release "dists/$suite" > "$release"
mv "$release" "dists/$suite/Release"
chmod 0644 "dists/$suite/Release"
rm -f "dists/$suite/InRelease" "dists/$suite/Release.gpg"
gpg --batch --yes --local-user testbed@localhost --clearsign \
  -o "dists/$suite/InRelease" "dists/$suite/Release"
gpg --batch --yes --local-user testbed@localhost --armor --detach-sign \
  -o "dists/$suite/Release.gpg" "dists/$suite/Release"
