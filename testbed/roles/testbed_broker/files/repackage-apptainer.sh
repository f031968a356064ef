#!/bin/bash
# Make a NeuroDebian-style singularity-container package for the test bed's
# NeuroDebian stand-in: Debian unstable's apptainer (the real program,
# downloaded from the Debian mirror without adding unstable to this host's
# sources), renamed. The .deb lands in OUTDIR; an existing one is kept.
# Usage: repackage-apptainer.sh OUTDIR [MIRROR]
set -euo pipefail
outdir=$1 mirror=${2:-http://deb.debian.org/debian}
if compgen -G "$outdir/singularity-container_*.deb" > /dev/null; then
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/pkg"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror unstable main" > "$work/sources.list"
apt_opts=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/nonexistent
          -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache"
          -o APT::Sandbox::User=root -o Acquire::Check-Valid-Until=false)
apt-get "${apt_opts[@]}" -qq update
(cd "$work" && apt-get "${apt_opts[@]}" -qq download apptainer)
dpkg-deb -R "$work"/apptainer_*.deb "$work/pkg"
control="$work/pkg/DEBIAN/control"
sed -i -e 's/^Package: apptainer$/Package: singularity-container/' \
       -e '/^Provides: singularity-container$/d' \
       -e '/^\(Static-\)\?Built-Using:/d' "$control"
printf 'Conflicts: apptainer\nReplaces: apptainer\n' >> "$control"
version=$(sed -n 's/^Version: //p' "$control")
mkdir -p "$outdir"
# Fast compression: the package crosses only the test bed's own network.
dpkg-deb -Zgzip -z1 --build "$work/pkg" "$outdir/singularity-container_${version}_amd64.deb" > /dev/null
