# mv stand-in: runs the real mv, then records each move in $STATE/owners
# ("mv", source, destination) so that the owners the chown stand-in
# recorded follow the files: a temp file chowned and then renamed over its
# target (as inject.WriteFile does) leaves the target with that owner. The
# arguments are GNU mv's and are passed on as given; -t DIR,
# --target-directory=DIR and -T decide where each source goes.
tab='	'
target=
notarget=0
skip=
ended=0
ops=
n=0
last=
for a in "$@"; do
	case $skip in
	t) target=$a; skip=; continue ;;
	S) skip=; continue ;;
	esac
	if [ $ended -eq 0 ]; then
		case $a in
		--) ended=1; continue ;;
		--target-directory) skip=t; continue ;;
		--target-directory=*) target=${a#--target-directory=}; continue ;;
		--no-target-directory) notarget=1; continue ;;
		--suffix) skip=S; continue ;;
		--*) continue ;;
		-?*)
			c=${a#-}
			while [ -n "$c" ]; do
				rest=${c#?}
				case ${c%"$rest"} in
				T) notarget=1 ;;
				t) if [ -n "$rest" ]; then target=$rest; else skip=t; fi; break ;;
				S) [ -n "$rest" ] || skip=S; break ;;
				esac
				c=$rest
			done
			continue
			;;
		esac
	fi
	n=$((n + 1))
	ops=$ops$a$nl
	last=$a
done

# pairs: "source<TAB>destination" lines, physical paths, worked out before
# the move (whether the destination is a directory decides).
pairs=
if [ -n "$target" ] || { [ $notarget -eq 0 ] && [ $n -gt 2 ]; } || { [ $notarget -eq 0 ] && [ $n -eq 2 ] && [ -d "$last" ]; }; then
	todir=$target
	srcs=$ops
	if [ -z "$todir" ]; then
		todir=$last
		srcs=${ops%"$last$nl"}
	fi
	if physdir "$todir"; then
		td=$_d
		while IFS= read -r a; do
			[ -n "$a" ] || continue
			abspath "$a" || continue
			base "$a"
			pairs=$pairs$_abs$tab${td%/}/$_base$nl
		done <<END
$srcs
END
	fi
elif [ $n -eq 2 ]; then
	first=${ops%%"$nl"*}
	if abspath "$first"; then
		src=$_abs
		if abspath "$last"; then
			pairs=$src$tab$_abs$nl
		fi
	fi
fi

command -p mv "$@"
status=$?
while IFS=$tab read -r src dst; do
	[ -n "$src" ] || continue
	if [ ! -e "$src" ] && [ ! -L "$src" ] && { [ -e "$dst" ] || [ -L "$dst" ]; }; then
		printf 'mv\t%s\t%s\n' "$src" "$dst" >>"$STATE/owners"
	fi
done <<END
$pairs
END
exit $status
