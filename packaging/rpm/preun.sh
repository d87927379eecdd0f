# pathdns %preun. On erase ($1 = 0), before the service stops: if `pathdns resolver
# enable` made pathdns the host's resolver, put the previous resolver configuration back,
# so that the host never asks a resolver that is gone; if that fails, the erase stops here
# with pathdns still installed and answering. Then what %systemd_preun pathdns.socket
# pathdns.service expands to: disable and stop both units; then the node-local address
# is removed.
if [ "$1" -eq 0 ]; then
    if [ -x /usr/bin/pathdns ]; then
        if ! /usr/bin/pathdns resolver disable --package-removal; then
            echo "pathdns: could not restore the host's previous resolver; pathdns stays installed." >&2
            echo "pathdns: see 'pathdns resolver status', fix it (or 'pathdns resolver disable --force'), then erase again." >&2
            exit 1
        fi
    fi
    if [ -x /usr/lib/systemd/systemd-update-helper ]; then
        /usr/lib/systemd/systemd-update-helper remove-system-units pathdns.socket pathdns.service || :
    elif [ -d /run/systemd/system ]; then
        systemctl --no-reload disable --now pathdns.socket pathdns.service >/dev/null 2>&1 || :
    fi
    # After the service stopped: the node-local address (only addresses labelled
    # lo:pathdns) goes with the package; a failure is said, never fatal.
    if [ -x /usr/bin/pathdns ]; then
        /usr/bin/pathdns node-local down || echo "pathdns: could not remove the node-local address: see 'ip address show dev lo'" >&2
    fi
fi
