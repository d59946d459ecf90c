/bin/sh -c 'M=hatchery-0123456789abcdef01234567
m() { printf "\n%s %s\n" "$M" "$*"; printf "\n%s %s\n" "$M" "$*" >&2; }
m start 0
(
cloud-init status --wait >/dev/null; r=$?; if [ $r -eq 0 ]; then exit 0; fi; printf "hatchery: cloud-init status --wait exited %s\n" "$r" >&2; cloud-init status --long >&2; exit $r
) </dev/null
r=$?
m end 0 $r
[ $r -eq 0 ] || exit $r
m start 1
(
mkdir -p /home/rachel/app && chmod 0750 /home/rachel/app && chown rachel:rachel /home/rachel/app
) </dev/null
r=$?
m end 1 $r
[ $r -eq 0 ] || exit $r
m start 2
head -c 69 | ( (
umask 077; t=$(mktemp /home/rachel/app/..env.hatchery-XXXXXX) || exit 1; hatchery_rm() { rm -f "$t"; }; trap hatchery_rm 0; trap "exit 129" 1; trap "exit 130" 2; trap "exit 141" 13; trap "exit 143" 15; head -c 55 >"$t" && [ "$(head -c 14)" = "#hatchery-eof#" ] || { printf "hatchery: input for %s ended early, left unchanged\n" /home/rachel/app/.env >&2; exit 1; }; chmod 0600 "$t" && chown rachel:rachel "$t" && mv -f "$t" /home/rachel/app/.env
); r=$?; cat >/dev/null; exit $r )
r=$?
[ $r -ne 0 ] || [ "$(head -c 32)" = "#frame-0123456789abcdef01234567#" ] || { printf "hatchery: stdin of this step lost its framing\n" >&2; r=125; }
m end 2 $r
[ $r -eq 0 ] || exit $r
m start 3
head -c 52 | ( (
umask 077; t=$(mktemp /home/rachel/.config/gh/.hosts.yml.hatchery-XXXXXX) || exit 1; hatchery_rm() { rm -f "$t"; }; trap hatchery_rm 0; trap "exit 129" 1; trap "exit 130" 2; trap "exit 141" 13; trap "exit 143" 15; head -c 38 >"$t" && [ "$(head -c 14)" = "#hatchery-eof#" ] || { printf "hatchery: input for %s ended early, left unchanged\n" /home/rachel/.config/gh/hosts.yml >&2; exit 1; }; chmod 0600 "$t" && chown rachel "$t" && mv -f "$t" /home/rachel/.config/gh/hosts.yml
); r=$?; cat >/dev/null; exit $r )
r=$?
[ $r -ne 0 ] || [ "$(head -c 32)" = "#frame-0123456789abcdef01234567#" ] || { printf "hatchery: stdin of this step lost its framing\n" >&2; r=125; }
m end 3 $r
[ $r -eq 0 ] || exit $r
m start 4
head -c 97 | ( (
sudo -n /bin/sh -c '\''umask 077; t=$(mktemp /etc/systemd/system/.rachel8.service.hatchery-XXXXXX) || exit 1; hatchery_rm() { rm -f "$t"; }; trap hatchery_rm 0; trap "exit 129" 1; trap "exit 130" 2; trap "exit 141" 13; trap "exit 143" 15; head -c 83 >"$t" && [ "$(head -c 14)" = "#hatchery-eof#" ] || { printf "hatchery: input for %s ended early, left unchanged\n" /etc/systemd/system/rachel8.service >&2; exit 1; }; chmod 0644 "$t" && mv -f "$t" /etc/systemd/system/rachel8.service'\''
); r=$?; cat >/dev/null; exit $r )
r=$?
[ $r -ne 0 ] || [ "$(head -c 32)" = "#frame-0123456789abcdef01234567#" ] || { printf "hatchery: stdin of this step lost its framing\n" >&2; r=125; }
m end 4 $r
[ $r -eq 0 ] || exit $r
m start 5
(
sudo -n systemctl daemon-reload
) </dev/null
r=$?
m end 5 $r
[ $r -eq 0 ] || exit $r
m start 6
(
sudo -n systemctl enable rachel8.service
) </dev/null
r=$?
m end 6 $r
[ $r -eq 0 ] || exit $r
m start 7
(
sudo -n systemctl restart rachel8.service
) </dev/null
r=$?
m end 7 $r
[ $r -eq 0 ] || exit $r
m start 8
(
i=0; while s=$(systemctl is-active rachel8.service 2>&1); do [ $i -ge 5 ] && exit 0; sleep 1; i=$((i+1)); done; printf "hatchery: %s is %s\n" rachel8.service "$s" >&2; sudo -n journalctl -u rachel8.service -n 50 --no-pager >&2; exit 3
) </dev/null
r=$?
m end 8 $r
[ $r -eq 0 ] || exit $r
exit 0
'
