# chown stand-in: validates user[:group] against root and the cloud-config
# users and groups, checks the files exist, and records the new owner in
# $STATE/owners (path, user, group, recursive) instead of changing real
# ownership: every file belongs to the OS user running the test. As GNU
# chown, a symbolic link given is followed unless -h (or -R without -H or
# -L), so the owner is recorded for the file it points to; the mv
# stand-in moves recorded owners with the files.
recursive=0
deref=1
follow=0
while [ $# -gt 0 ]; do
	case $1 in
	-R | --recursive) recursive=1; shift ;;
	-h | --no-dereference) deref=0; shift ;;
	--dereference) deref=1; shift ;;
	-H | -L) follow=1; shift ;;
	-P | -v | --verbose | -c | --changes | -f | --silent | --quiet) shift ;;
	--) shift; break ;;
	-*) echo "chown: option not simulated by the fake provider: $1" >&2; exit 1 ;;
	*) break ;;
	esac
done
[ $recursive -eq 0 ] || [ $follow -eq 1 ] || deref=0
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
	p=$f
	if [ $deref -eq 1 ] && [ -L "$f" ]; then
		p=$(readlink -f -- "$f") || { status=1; continue; }
	fi
	abspath "$p" || { status=1; continue; }
	printf '%s\t%s\t%s\t%s\n' "$_abs" "$u" "$g" "$recursive" >>"$STATE/owners"
done
exit $status
