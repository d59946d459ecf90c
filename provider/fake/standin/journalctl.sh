# journalctl stand-in: prints the simulated journal the systemctl stand-in
# writes. Options: -u/--unit UNIT, -n/--lines N; --no-pager, -b, -x, -e, -q
# and -o are accepted. Like Debian, only root and members of adm or
# systemd-journal see system units' messages; others get "-- No entries --"
# and, on stderr, journalctl's hint.
need_arg() { [ $# -ge 2 ] || { echo "journalctl: option '$1' requires an argument" >&2; exit 1; }; }
unit=
lines=
quiet=0
while [ $# -gt 0 ]; do
	case $1 in
	-u | --unit) need_arg "$@"; unit=$2; shift 2 ;;
	-u*) unit=${1#-u}; shift ;;
	--unit=*) unit=${1#--unit=}; shift ;;
	-n | --lines) need_arg "$@"; lines=$2; shift 2 ;;
	-n*) lines=${1#-n}; shift ;;
	--lines=*) lines=${1#--lines=}; shift ;;
	-q | --quiet) quiet=1; shift ;;
	--no-pager | -b | --boot | -x | --catalog | -e | --pager-end | --no-hostname | -l | --full | -a | --all | --system) shift ;;
	-o | --output) need_arg "$@"; shift 2 ;;
	--output=*) shift ;;
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
if [ -n "$unit" ]; then
	valid_unit "$unit" || { echo "Failed to add match '$unit': Invalid argument" >&2; exit 1; }
	unit_name "$unit"
	files=$STATE/journal/$_unit
else
	files=$(ls "$STATE/journal/"* 2>/dev/null)
fi
out=$(cat $files 2>/dev/null)
if [ -z "$out" ]; then
	echo "-- No entries --"
	exit 0
fi
if [ -n "$lines" ]; then
	printf '%s\n' "$out" | tail -n "$lines"
else
	printf '%s\n' "$out"
fi
