#!/bin/sh
# Disk hygiene of a saltant worker host, run by saltant-worker-cleanup.service
# (from its timer). Settings come from the unit's environment; 0 turns a part
# off. Each part runs even when another fails; the exit status says whether
# all went well, and the journal says what was removed.
#
# SALTANT_CLEANUP_DOCKER_HOURS: remove exited job containers (label
#   saltant.job) and images no container uses, created more than that many
#   hours ago (Docker knows when an image was created, not when it was used).
# SALTANT_CLEANUP_IMAGE_DAYS, SALTANT_CLEANUP_IMAGES_DIR, SALTANT_CLEANUP_HOME:
#   remove the worker's pulled Singularity images no job used for that many
#   days (the worker touches an image each time a job uses it), and the
#   entries of the runtime's cache in the worker's home older than that.
set -u
status=0

docker_hours=${SALTANT_CLEANUP_DOCKER_HOURS:-0}
if [ "$docker_hours" -gt 0 ]; then
    echo "removing exited job containers and unused images created more than $docker_hours hours ago"
    docker container prune --force --filter label=saltant.job --filter "until=${docker_hours}h" || status=1
    docker image prune --all --force --filter "until=${docker_hours}h" || status=1
fi

image_days=${SALTANT_CLEANUP_IMAGE_DAYS:-0}
images=${SALTANT_CLEANUP_IMAGES_DIR:-}
if [ "$image_days" -gt 0 ] && [ -n "$images" ] && [ -d "$images" ]; then
    echo "removing Singularity images in $images that no job used for $image_days days"
    # -mtime +N means more than N+1 whole days: N-1 gives "at least N days".
    find "$images" -xdev -mindepth 1 -maxdepth 1 -type f -name '*.sif' -mtime +$((image_days - 1)) \
        -print -delete || status=1
    home=${SALTANT_CLEANUP_HOME:-}
    for runtime in apptainer singularity; do
        cache=$home/.$runtime/cache
        if [ -n "$home" ] && [ -d "$cache" ] && command -v "$runtime" >/dev/null 2>&1; then
            echo "cleaning $runtime's cache $cache of entries older than $image_days days"
            APPTAINER_CACHEDIR=$cache SINGULARITY_CACHEDIR=$cache \
                "$runtime" cache clean --force --days "$image_days" || status=1
        fi
    done
fi
exit $status
