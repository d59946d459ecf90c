# sudo stand-in: checks the caller may sudo without a password (a
# NOPASSWD rule in its cloud-config sudo entry), drops sudo's options and
# runs the rest as the target user. Every process still runs as the OS user
# running the test; only the simulated user (HATCHERY_FAKE_USER, HOME,
# USER) changes.
target=root
while [ $# -gt 0 ]; do
	case $1 in
	-n | --non-interactive | -H | --set-home | -E | --preserve-env | -k | --reset-timestamp) shift ;;
	-u | --user)
		[ $# -ge 2 ] || { echo "sudo: option requires an argument -- 'u'" >&2; exit 1; }
		target=$2
		shift 2
		;;
	-u*) target=${1#-u}; shift ;;
	--user=*) target=${1#--user=}; shift ;;
	--) shift; break ;;
	-*) echo "sudo: option not simulated by the fake provider: $1" >&2; exit 1 ;;
	*) break ;;
	esac
done
if [ $# -eq 0 ]; then
	echo "usage: sudo [-n] [-u user] command [arg ...]" >&2
	exit 1
fi
if ! is_root && ! user_nopasswd "$me"; then
	echo "sudo: a password is required" >&2
	exit 1
fi
if [ "$target" != root ] && ! user_exists "$target"; then
	echo "sudo: unknown user $target" >&2
	exit 1
fi
if [ "$target" = root ]; then
	home=$ROOT/root
else
	home=$ROOT/home/$target
fi
HATCHERY_FAKE_USER=$target HOME=$home USER=$target LOGNAME=$target SUDO_USER=$me
export HATCHERY_FAKE_USER HOME USER LOGNAME SUDO_USER
exec "$@"
