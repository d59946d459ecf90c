# journalctl stand-in: prints the simulated journal the systemctl stand-in
# (and the simulated cloud-init) write. Options: -u/--unit UNIT, given
# several times for the lines of any of them, merged by time; -n/--lines
# N; -o cat prints the messages alone, as journalctl does; --no-pager,
# -b, -x, -e, -q and the other -o modes are accepted. Like Debian, only root and members of adm or
# systemd-journal see system units' messages; others get "-- No entries --"
# and, on stderr, journalctl's hint.
need_arg() { [ $# -ge 2 ] || { echo "journalctl: option '$1' requires an argument" >&2; exit 1; }; }
units=
lines=
quiet=0
cat=0
while [ $# -gt 0 ]; do
	case $1 in
	-u | --unit) need_arg "$@"; units="$units $2"; shift 2 ;;
	-u*) units="$units ${1#-u}"; shift ;;
	--unit=*) units="$units ${1#--unit=}"; shift ;;
	-n | --lines) need_arg "$@"; lines=$2; shift 2 ;;
	-n*) lines=${1#-n}; shift ;;
	--lines=*) lines=${1#--lines=}; shift ;;
	-q | --quiet) quiet=1; shift ;;
	--no-pager | -b | --boot | -x | --catalog | -e | --pager-end | --no-hostname | -l | --full | -a | --all | --system) shift ;;
	-o | --output) need_arg "$@"; [ "$2" != cat ] || cat=1; shift 2 ;;
	--output=*) [ "${1#--output=}" != cat ] || cat=1; shift ;;
	*) echo "journalctl: option not simulated by the fake provider: $1" >&2; exit 1 ;;
	esac
done
case $lines in '' | *[!0-9]*) [ -z "$lines" ] || { echo "Failed to parse lines '$lines'" >&2; exit 1; } ;; esac
if ! can_read_journal; then
	if [ $quiet -eq 0 ]; then
		{
			echo "Hint: You are currently not seeing messages from other users and the system."
			echo "      Users in groups 'adm', 'systemd-journal' can see all messages."
			echo "      Pass -q to turn off this notice."
		} >&2
	fi
	echo "-- No entries --"
	exit 0
fi
files=
for unit in $units; do
	valid_unit "$unit" || { echo "Failed to add match '$unit': Invalid argument" >&2; exit 1; }
	unit_name "$unit"
	files="$files $STATE/journal/$_unit"
done
[ -n "$units" ] || files=$(ls "$STATE/journal/"* 2>/dev/null)
# Lines are "Mon DD HH:MM:SS HOST IDENT[PID]: MESSAGE", each file in time
# order; several are merged by time (a simulated boot fits in a day).
out=$(cat $files 2>/dev/null | sort -s -k3,3)
if [ $cat -eq 1 ] && [ -n "$out" ]; then
	out=$(printf '%s\n' "$out" | sed -E 's/^[A-Z][a-z][a-z] [0-9][0-9] [0-9:]{8} [^ ]+ [^ :]+: //')
fi
if [ -z "$out" ]; then
	echo "-- No entries --"
	exit 0
fi
if [ -n "$lines" ]; then
	printf '%s\n' "$out" | tail -n "$lines"
else
	printf '%s\n' "$out"
fi
