# chown stand-in: validates user[:group] against root and the cloud-config
# users and groups, checks the files exist, and records the new owner in
# $STATE/owners (path, user, group, recursive) instead of changing real
# ownership: every file belongs to the OS user running the test.
recursive=0
while [ $# -gt 0 ]; do
	case $1 in
	-R | --recursive) recursive=1; shift ;;
	-h | --no-dereference | -v | --verbose | -c | --changes | -f | --silent | --quiet | -H | -L | -P) shift ;;
	--) shift; break ;;
	-*) echo "chown: option not simulated by the fake provider: $1" >&2; exit 1 ;;
	*) break ;;
	esac
done
if [ $# -lt 2 ]; then
	echo "chown: missing operand" >&2
	exit 1
fi
spec=$1
shift
case $spec in
*:*) u=${spec%%:*}; g=${spec#*:} ;;
*) u=$spec; g= ;;
esac
case $spec in *:) g=$u ;; esac
case $u in 0) u=root ;; esac
case $g in 0) g=root ;; esac
if [ -n "$u" ] && ! user_exists "$u"; then
	echo "chown: invalid user: '$spec'" >&2
	exit 1
fi
if [ -n "$g" ] && ! group_exists "$g"; then
	echo "chown: invalid group: '$spec'" >&2
	exit 1
fi
status=0
for f in "$@"; do
	if [ ! -e "$f" ] && [ ! -L "$f" ]; then
		echo "chown: cannot access '$f': No such file or directory" >&2
		status=1
		continue
	fi
	if ! is_root && { { [ -n "$u" ] && [ "$u" != "$me" ]; } || { [ -n "$g" ] && ! in_group "$me" "$g"; }; }; then
		echo "chown: changing ownership of '$f': Operation not permitted" >&2
		status=1
		continue
	fi
	dir=$(cd -- "$(dirname -- "$f")" && pwd) || { status=1; continue; }
	base=$(basename -- "$f")
	case $base in /) abs=/ ;; .) abs=$dir ;; *) abs=${dir%/}/$base ;; esac
	printf '%s\t%s\t%s\t%s\n' "$abs" "$u" "$g" "$recursive" >>"$STATE/owners"
done
exit $status
