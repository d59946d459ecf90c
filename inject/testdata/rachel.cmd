/bin/sh -c 'if command -v setsid >/dev/null 2>&1; then
exec 3<&0
setsid /bin/sh -c "$1" hatchery-setsid <&3 3<&- &
p=$!
exec 3<&- </dev/null
trap '\''kill -TERM -$p 2>/dev/null'\'' HUP INT TERM
while :; do wait $p; r=$?; kill -0 $p 2>/dev/null || exit $r; done
fi
exec /bin/sh -c "$1" hatchery
' hatchery 'M=hatchery-0123456789abcdef01234567
m() { printf "\n%s %s\n" "$M" "$*"; printf "\n%s %s\n" "$M" "$*" >&2; }
w=
if [ "$0" = hatchery-setsid ]; then
( trap '\'''\'' PIPE; while sleep 1 >/dev/null 2>&1; do printf '\''\n%s alive\n'\'' "$M" || break; done; kill -TERM 0 ) 2>/dev/null &
w=$!
fi
trap '\''[ -z "$w" ] || kill $w 2>/dev/null'\'' EXIT
m start 0
(
cloud-init status --wait >/dev/null; r=$?; if [ $r -eq 0 ]; then exit 0; fi; printf "hatchery: cloud-init status --wait exited %s\n" "$r" >&2; { sudo -n journalctl -b -u cloud-init.service -u cloud-config.service -u cloud-final.service --no-pager -o cat 2>/dev/null | grep -v -e '\'' SHA256:'\'' -e '\''SSH HOST KEY'\'' -e '\''^Cloud-init v\. '\'' -e '\''^Starting cloud-'\'' -e '\''^Finished cloud-'\'' -e '\''^cloud-[a-z]*\.service: '\'' | tail -n 12; } >&2; cloud-init status --long >&2; exit $r
) </dev/null
r=$?
m end 0 $r
[ $r -eq 0 ] || exit $r
m start 1
(
hatchery_nolink() { for a; do [ ! -L "$a" ] || { printf "hatchery: %s is a symbolic link; refusing to follow it\n" "$a" >&2; return 1; }; done; }; hatchery_nolink /home/rachel /home/rachel/app || exit 1; mkdir -p /home/rachel/app && cd -P /home/rachel/app || exit 1; hatchery_nolink /home/rachel /home/rachel/app || exit 1; [ . -ef /home/rachel/app ] || { printf "hatchery: %s changed while it was being created; refusing to follow it\n" /home/rachel/app >&2; exit 1; }; chmod 0750 . && chown -h rachel:rachel /home/rachel/app
) </dev/null
r=$?
m end 1 $r
[ $r -eq 0 ] || exit $r
m start 2
head -c 69 | ( (
umask 077; hatchery_nolink() { for a; do [ ! -L "$a" ] || { printf "hatchery: %s is a symbolic link; refusing to follow it\n" "$a" >&2; return 1; }; done; }; hatchery_nolink /home/rachel /home/rachel/app /home/rachel/app/.env || exit 1; cd -P /home/rachel/app || exit 1; hatchery_nolink /home/rachel /home/rachel/app || exit 1; [ . -ef /home/rachel/app ] || { printf "hatchery: %s changed while %s was being written; refusing to follow it\n" /home/rachel/app /home/rachel/app/.env >&2; exit 1; }; [ ! -d ./.env ] || { printf "hatchery: %s is a directory\n" /home/rachel/app/.env >&2; exit 1; }; t=$(mktemp -d ./..env.hatchery-XXXXXXXXXX) || exit 1; t=${t#./}; hatchery_rm() { rm -rf "./$t"; }; trap hatchery_rm 0; trap "exit 129" 1; trap "exit 130" 2; trap "exit 141" 13; trap "exit 143" 15; ( cd -P "$t" && [ -O . ] && [ ! -L "../$t" ] && [ . -ef "../$t" ] || { printf "hatchery: the temp directory for %s changed; refusing to follow it\n" /home/rachel/app/.env >&2; exit 1; }; head -c 55 >.hatchery-new~ && [ "$(head -c 14)" = "#hatchery-eof#" ] || { printf "hatchery: input for %s ended early, left unchanged\n" /home/rachel/app/.env >&2; exit 1; }; chmod 0600 .hatchery-new~ && chown -h rachel:rachel .hatchery-new~ && mv -fT .hatchery-new~ ../.env ) || exit $?; [ -f ./.env ] && [ ! -L ./.env ] || { printf "hatchery: %s was replaced while it was being written\n" /home/rachel/app/.env >&2; exit 1; }
); r=$?; cat >/dev/null; exit $r )
r=$?
[ $r -ne 0 ] || [ "$(head -c 32)" = "#frame-0123456789abcdef01234567#" ] || { printf "hatchery: stdin of this step lost its framing\n" >&2; r=125; }
m end 2 $r
[ $r -eq 0 ] || exit $r
m start 3
head -c 52 | ( (
umask 077; hatchery_nolink() { for a; do [ ! -L "$a" ] || { printf "hatchery: %s is a symbolic link; refusing to follow it\n" "$a" >&2; return 1; }; done; }; hatchery_nolink /home/rachel /home/rachel/.config /home/rachel/.config/gh /home/rachel/.config/gh/hosts.yml || exit 1; cd -P /home/rachel/.config/gh || exit 1; hatchery_nolink /home/rachel /home/rachel/.config /home/rachel/.config/gh || exit 1; [ . -ef /home/rachel/.config/gh ] || { printf "hatchery: %s changed while %s was being written; refusing to follow it\n" /home/rachel/.config/gh /home/rachel/.config/gh/hosts.yml >&2; exit 1; }; [ ! -d ./hosts.yml ] || { printf "hatchery: %s is a directory\n" /home/rachel/.config/gh/hosts.yml >&2; exit 1; }; t=$(mktemp -d ./.hosts.yml.hatchery-XXXXXXXXXX) || exit 1; t=${t#./}; hatchery_rm() { rm -rf "./$t"; }; trap hatchery_rm 0; trap "exit 129" 1; trap "exit 130" 2; trap "exit 141" 13; trap "exit 143" 15; ( cd -P "$t" && [ -O . ] && [ ! -L "../$t" ] && [ . -ef "../$t" ] || { printf "hatchery: the temp directory for %s changed; refusing to follow it\n" /home/rachel/.config/gh/hosts.yml >&2; exit 1; }; head -c 38 >.hatchery-new~ && [ "$(head -c 14)" = "#hatchery-eof#" ] || { printf "hatchery: input for %s ended early, left unchanged\n" /home/rachel/.config/gh/hosts.yml >&2; exit 1; }; chmod 0600 .hatchery-new~ && chown -h rachel .hatchery-new~ && mv -fT .hatchery-new~ ../hosts.yml ) || exit $?; [ -f ./hosts.yml ] && [ ! -L ./hosts.yml ] || { printf "hatchery: %s was replaced while it was being written\n" /home/rachel/.config/gh/hosts.yml >&2; exit 1; }
); r=$?; cat >/dev/null; exit $r )
r=$?
[ $r -ne 0 ] || [ "$(head -c 32)" = "#frame-0123456789abcdef01234567#" ] || { printf "hatchery: stdin of this step lost its framing\n" >&2; r=125; }
m end 3 $r
[ $r -eq 0 ] || exit $r
m start 4
head -c 97 | ( (
sudo -n /bin/sh -c '\''umask 077; hatchery_nolink() { for a; do [ ! -L "$a" ] || { printf "hatchery: %s is a symbolic link; refusing to follow it\n" "$a" >&2; return 1; }; done; }; hatchery_nolink /etc/systemd /etc/systemd/system /etc/systemd/system/rachel8.service || exit 1; cd -P /etc/systemd/system || exit 1; hatchery_nolink /etc/systemd /etc/systemd/system || exit 1; [ . -ef /etc/systemd/system ] || { printf "hatchery: %s changed while %s was being written; refusing to follow it\n" /etc/systemd/system /etc/systemd/system/rachel8.service >&2; exit 1; }; [ ! -d ./rachel8.service ] || { printf "hatchery: %s is a directory\n" /etc/systemd/system/rachel8.service >&2; exit 1; }; t=$(mktemp -d ./.rachel8.service.hatchery-XXXXXXXXXX) || exit 1; t=${t#./}; hatchery_rm() { rm -rf "./$t"; }; trap hatchery_rm 0; trap "exit 129" 1; trap "exit 130" 2; trap "exit 141" 13; trap "exit 143" 15; ( cd -P "$t" && [ -O . ] && [ ! -L "../$t" ] && [ . -ef "../$t" ] || { printf "hatchery: the temp directory for %s changed; refusing to follow it\n" /etc/systemd/system/rachel8.service >&2; exit 1; }; head -c 83 >.hatchery-new~ && [ "$(head -c 14)" = "#hatchery-eof#" ] || { printf "hatchery: input for %s ended early, left unchanged\n" /etc/systemd/system/rachel8.service >&2; exit 1; }; chmod 0644 .hatchery-new~ && mv -fT .hatchery-new~ ../rachel8.service ) || exit $?; [ -f ./rachel8.service ] && [ ! -L ./rachel8.service ] || { printf "hatchery: %s was replaced while it was being written\n" /etc/systemd/system/rachel8.service >&2; exit 1; }'\''
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
