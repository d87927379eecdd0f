# pathdns %post: what %systemd_post pathdns.socket pathdns.service expands to. On the first installation
# ($1 = 1) the unit is enabled only if the system's presets say so (RHEL's default preset
# leaves it disabled, and nothing is started: the administrator decides).
# The service runs as a DynamicUser: no account to create.
if [ "$1" -eq 1 ]; then
    if [ -x /usr/lib/systemd/systemd-update-helper ]; then
        /usr/lib/systemd/systemd-update-helper install-system-units pathdns.socket pathdns.service || :
    elif [ -d /run/systemd/system ]; then
        systemctl --no-reload preset pathdns.socket pathdns.service >/dev/null 2>&1 || :
    fi
fi
