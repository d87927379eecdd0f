# pathdns %postun: what %systemd_postun_with_restart pathdns.service expands to. After an
# upgrade ($1 >= 1) a running pathdns is restarted on the new binary (the service only:
# pathdns.socket keeps its sockets open meanwhile, so no query is refused); after an erase
# ($1 = 0) systemd forgets the unit, and what the package created besides its files goes:
# the resolver state directory, the discovered addresses (StateDirectory=), the
# documentation directories and the configuration
# directory (an edited config is kept as pathdns.toml.rpmsave by rpm, and then it stays).
if [ -x /usr/lib/systemd/systemd-update-helper ]; then
    if [ "$1" -ge 1 ]; then
        /usr/lib/systemd/systemd-update-helper mark-restart-system-units pathdns.service || :
    fi
    /usr/lib/systemd/systemd-update-helper system-reload || :
elif [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart pathdns.service >/dev/null 2>&1 || :
    fi
fi
if [ "$1" -eq 0 ]; then
    rm -rf /var/lib/pathdns /var/lib/private/pathdns
    # Directories the payload implies but does not own (cargo-generate-rpm lists files only).
    rmdir /usr/share/doc/pathdns/examples /usr/share/doc/pathdns/docs /usr/share/doc/pathdns /usr/share/licenses/pathdns \
        /usr/lib/systemd/system/pathdns.service.d /usr/share/pathdns/prometheus \
        /usr/share/pathdns/grafana /usr/share/pathdns /etc/pathdns 2>/dev/null || :
fi
