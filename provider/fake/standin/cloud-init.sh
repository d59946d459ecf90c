# cloud-init stand-in: `cloud-init status [--wait] [--long]` as cloud-init
# 22.4 prints it, from the state the fake provider's boot writes. Nothing
# else of cloud-init is simulated.
if [ $# -eq 0 ]; then
	echo "usage: cloud-init status [--wait] [--long]" >&2
	exit 2
fi
case $1 in
--version | -v) echo "/usr/bin/cloud-init 22.4.2"; exit 0 ;;
status) shift ;;
*) echo "cloud-init: subcommand not simulated by the fake provider: $1" >&2; exit 2 ;;
esac
wait=0
long=0
while [ $# -gt 0 ]; do
	case $1 in
	-w | --wait) wait=1 ;;
	-l | --long) long=1 ;;
	--format=tabular) ;;
	--format) [ "${2:-}" = tabular ] || { echo "cloud-init: only --format tabular is simulated" >&2; exit 2; }; shift ;;
	*) echo "cloud-init status: option not simulated by the fake provider: $1" >&2; exit 2 ;;
	esac
	shift
done
ci=$STATE/cloud-init
# status sets st to the status the boot recorded (written by rename, so
# read whole); running until there is one.
status() {
	st=running
	if [ -e "$ci/status" ]; then
		st=
		IFS= read -r st <"$ci/status"
	fi
}
status
if [ $wait -eq 1 ]; then
	while [ "$st" = running ]; do
		printf .
		sleep 0.25
		status
	done
	echo
fi
echo "status: $st"
if [ $long -eq 1 ]; then
	echo "boot_status_code: enabled-by-generator"
	if [ -s "$ci/last_update" ]; then
		IFS= read -r at <"$ci/last_update"
		echo "last_update: $at"
	fi
	echo "detail:"
	if [ -s "$ci/detail" ]; then
		while IFS= read -r l; do printf '%s\n' "$l"; done <"$ci/detail"
	else
		echo "Running in stage: modules-final"
	fi
fi
[ "$st" = error ] && exit 1
exit 0
