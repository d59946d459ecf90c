# systemctl stand-in: a small model of systemd 252's unit states, kept in
# files under $STATE/systemd, with a journal the journalctl stand-in prints.
# Simulated: unit files under /etc/systemd/system only; units are loaded on
# first use and reloaded by daemon-reload (and by enable/disable), so a unit
# file changed without a reload keeps its old content, with systemd's
# warning; ConditionPathExists= (also negated with !) is honoured, a failed
# condition leaves the unit inactive with exit status 0. What systemd checks
# when it loads a unit: a WorkingDirectory= that is not an absolute path (an
# unrendered __PLACEHOLDER__) is a fatal error, the unit has a bad setting
# and does not start; a ConditionPathExists= or EnvironmentFile= that is not
# absolute is ignored with a warning. What fails only once started (start
# exits 0, the unit ends failed): a User= or Group= that does not exist
# (217/USER, 216/GROUP), a WorkingDirectory= that does not exist
# (200/CHDIR), an ExecStart= program with a placeholder (203/EXEC); and,
# with the UnitFails fault, every unit. Nothing is executed: a unit that
# starts gets one journal line from its process saying so. Without root,
# managing units is "Access denied", as on an image without polkit.
unitdir=$ROOT/etc/systemd/system
# state: enabled/, active/ (holding the start time), failed/ and loaded/
# (the unit files as last loaded), made at Create.
sd=$STATE/systemd

quiet=0
now_flag=0
reload=1
verb=
units=
for a in "$@"; do
	case $a in
	-q | --quiet) quiet=1 ;;
	--now) now_flag=1 ;;
	--no-reload) reload=0 ;;
	--no-pager | --no-block | --no-ask-password | --system | -l | --full | --no-legend) ;;
	-*) echo "systemctl: option not simulated by the fake provider: $a" >&2; exit 1 ;;
	*)
		if [ -z "$verb" ]; then
			verb=$a
		else
			if ! valid_unit "$a"; then
				echo "Invalid unit name \"$a\"." >&2
				exit 1
			fi
			unit_name "$a"
			units="$units $_unit"
		fi
		;;
	esac
done

need_units() {
	if [ -z "$units" ]; then
		echo "Too few arguments." >&2
		exit 1
	fi
}

# need_root VERB: only root manages units; the image has no polkit to ask,
# so systemd answers "Access denied", as systemctl 252 prints it.
need_root() {
	is_root && return 0
	case $1 in
	daemon-reload)
		echo "Reload daemon failed: Access denied" >&2
		exit 1
		;;
	enable | disable)
		echo "Failed to $1 unit: Access denied" >&2
		exit 1
		;;
	esac
	for u in $units; do
		echo "Failed to $1 $u: Access denied" >&2
		echo "See system logs and 'systemctl status $u' for details." >&2
	done
	exit 4
}

say() { [ $quiet -eq 1 ] || printf '%s\n' "$*"; }

reload_all() {
	for f in "$sd/loaded/"*; do
		[ -f "$f" ] && [ ! -f "$unitdir/${f##*/}" ] && rm -f "$f"
	done
	for f in "$unitdir"/*; do
		[ -f "$f" ] && copy "$f" "$sd/loaded/${f##*/}"
	done
	return 0
}

# load UNIT loads the unit file on first use, as systemd does; returns 1
# when there is none.
load() {
	if [ ! -f "$sd/loaded/$1" ]; then
		[ -f "$unitdir/$1" ] || return 1
		copy "$unitdir/$1" "$sd/loaded/$1"
	elif [ -f "$unitdir/$1" ] && ! same "$unitdir/$1" "$sd/loaded/$1"; then
		echo "Warning: The unit file, source configuration file or drop-ins of $1 changed on disk. Run 'systemctl daemon-reload' to reload units." >&2
	fi
	return 0
}

# parse_unit UNIT FILE reads a unit file once: _desc, _exec, _user,
# _group, _wd and _ident are its last Description=, ExecStart=, User=,
# Group=, WorkingDirectory= and SyslogIdentifier=, _conds its absolute
# ConditionPathExists= values (one a line). What systemd says when it loads
# the file goes to _warn (one message a line, the file and line first);
# _fatal is set when one of them keeps the unit from starting.
parse_unit() {
	_desc=
	_exec=
	_user=
	_group=
	_wd=
	_ident=
	_conds=
	_warn=
	_fatal=
	_n=0
	while IFS= read -r _l || [ -n "$_l" ]; do
		_n=$((_n + 1))
		trim "$_l"
		_l=$_v
		_at="/etc/systemd/system/$1:$_n:"
		case $_l in
		Description*) value Description && _desc=$_v ;;
		ExecStart*) value ExecStart && _exec=$_v ;;
		User*) value User && _user=$_v ;;
		Group*) value Group && _group=$_v ;;
		SyslogIdentifier*) value SyslogIdentifier && _ident=$_v ;;
		WorkingDirectory*)
			value WorkingDirectory || continue
			case ${_v#-} in
			/* | '~' | '~/'*) _wd=$_v ;;
			'') _wd= ;;
			*)
				_warn="$_warn$_at WorkingDirectory= path is not absolute: $_v$nl"
				_fatal=1
				;;
			esac
			;;
		ConditionPathExists*)
			value ConditionPathExists || continue
			_p=${_v#|}
			case ${_p#!} in
			/*) _conds=$_conds$_v$nl ;;
			*) _warn="$_warn$_at ConditionPathExists= path is not absolute, ignoring: $_v$nl" ;;
			esac
			;;
		EnvironmentFile*)
			value EnvironmentFile || continue
			case ${_v#-} in
			/*) ;;
			*) _warn="$_warn$_at EnvironmentFile= path is not absolute, ignoring: $_v$nl" ;;
			esac
			;;
		esac
	done <"$2"
}

# runtime_error UNIT sets _err to the status=... a unit parsed by
# parse_unit exits with when systemd spawns its process, in the order
# systemd's checks run; "" when the process would start.
runtime_error() {
	_err=
	if [ -n "$_user" ] && ! known_user "$_user"; then
		_err=217/USER
	elif [ -n "$_group" ] && ! known_group "$_group"; then
		_err=216/GROUP
	fi
	[ -z "$_err" ] || return 0
	case $_wd in
	/*) [ -d "$ROOT$_wd" ] || _err=200/CHDIR ;;
	esac
	[ -z "$_err" ] || return 0
	program
	placeholder "$_prog" && _err=203/EXEC
	return 0
}

# program sets _prog to the program of the last ExecStart= parsed, without
# systemd's prefixes (@ - : + !), and _ident to what the journal calls its
# process: SyslogIdentifier=, else the program's base name.
program() {
	_prog=${_exec%%[[:space:]]*}
	while :; do
		case $_prog in
		[@:+!-]*) _prog=${_prog#?} ;;
		*) break ;;
		esac
	done
	if [ -z "$_ident" ]; then
		base "${_prog:-sh}"
		_ident=$_base
	fi
}

# known_user NAME: a user of the cloud-config, one of the image's system
# users, or a numeric UID.
known_user() {
	case $1 in '' | *[!0-9]*) ;; *) return 0 ;; esac
	user_exists "$1" || system_user "$1"
}

known_group() {
	case $1 in '' | *[!0-9]*) ;; *) return 0 ;; esac
	group_exists "$1" || system_group "$1"
}

# fail_started UNIT STATUS: the unit's process exited with STATUS right
# after it started; the unit is failed.
fail_started() {
	jlog "$1" "systemd[1]: $1: Main process exited, code=exited, status=$2"
	jlog "$1" "systemd[1]: $1: Failed with result 'exit-code'."
	: >"$sd/failed/$1"
}

# title UNIT sets _title to "UNIT - Description" as systemd 252 logs it,
# from the last parse_unit.
title() {
	if [ -n "$_desc" ]; then
		_title="$1 - $_desc"
	else
		_title=$1
	fi
}

# unmet sets _c to the first ConditionPathExists= of the last parse_unit
# that does not hold, "" when all do.
unmet() {
	_c=
	while IFS= read -r v; do
		p=${v#|}
		neg=0
		case $p in !*) neg=1; p=${p#!} ;; esac
		case $p in /*) ;; *) continue ;; esac
		if [ -e "$ROOT$p" ]; then there=1; else there=0; fi
		if [ $there -eq $neg ]; then
			_c="ConditionPathExists=$v"
			return 0
		fi
	done <<END
$_conds
END
}

# state UNIT sets _state to active, failed or inactive.
state() {
	if [ -f "$sd/active/$1" ]; then
		_state=active
	elif [ -f "$sd/failed/$1" ]; then
		_state=failed
	else
		_state=inactive
	fi
}

start_unit() {
	u=$1
	if ! load "$u"; then
		echo "Failed to start $u: Unit $u not found." >&2
		return 5
	fi
	state "$u"
	[ "$_state" = active ] && return 0
	f=$sd/loaded/$u
	parse_unit "$u" "$f"
	title "$u"
	if [ -n "$_warn" ]; then
		while IFS= read -r w; do
			[ -z "$w" ] || jlog "$u" "systemd[1]: $w"
		done <<END
$_warn
END
	fi
	if [ -n "$_fatal" ]; then
		jlog "$u" "systemd[1]: $u: Unit configuration has fatal error, unit will not be started."
		echo "Failed to start $u: Unit $u has a bad unit file setting." >&2
		echo "See system logs and 'systemctl status $u' for details." >&2
		return 1
	fi
	unmet
	if [ -n "$_c" ]; then
		jlog "$u" "systemd[1]: $_title was skipped because of an unmet condition check ($_c)."
		return 0
	fi
	jlog "$u" "systemd[1]: Started $_title."
	[ ! -e "$sd/failed/$u" ] || rm -f "$sd/failed/$u"
	runtime_error "$u"
	if [ -n "$_err" ]; then
		fail_started "$u" "$_err"
		return 0
	fi
	if [ "$UNIT_FAILS" = 1 ]; then
		jlog "$u" "$_ident[$$]: fatal: simulated failure (fake provider fault UnitFails)"
		fail_started "$u" 1/FAILURE
		return 0
	fi
	jlog "$u" "$_ident[$$]: [fake provider: $_prog is not run; its output would be here]"
	now
	printf '%s\n' "$_since" >"$sd/active/$u"
	return 0
}

stop_unit() {
	u=$1
	if [ ! -f "$sd/loaded/$u" ] && [ ! -f "$unitdir/$u" ]; then
		echo "Failed to stop $u: Unit $u not loaded." >&2
		return 5
	fi
	load "$u"
	state "$u"
	if [ "$_state" = active ]; then
		parse_unit "$u" "$sd/loaded/$u"
		title "$u"
		jlog "$u" "systemd[1]: Stopping $_title..."
		jlog "$u" "systemd[1]: $u: Deactivated successfully."
		jlog "$u" "systemd[1]: Stopped $_title."
	fi
	if [ -e "$sd/active/$u" ] || [ -e "$sd/failed/$u" ]; then
		rm -f "$sd/active/$u" "$sd/failed/$u"
	fi
	return 0
}

rc=0
case $verb in
daemon-reload)
	need_root daemon-reload
	reload_all
	;;
enable)
	need_units
	need_root enable
	for u in $units; do
		if [ ! -f "$unitdir/$u" ]; then
			echo "Failed to enable unit: Unit file $u does not exist." >&2
			exit 1
		fi
		if [ ! -f "$sd/enabled/$u" ]; then
			: >"$sd/enabled/$u"
			[ $quiet -eq 1 ] || echo "Created symlink /etc/systemd/system/multi-user.target.wants/$u → /etc/systemd/system/$u." >&2
		fi
	done
	[ $reload -eq 0 ] || reload_all
	if [ $now_flag -eq 1 ]; then
		for u in $units; do start_unit "$u" || rc=$?; done
	fi
	;;
disable)
	need_units
	need_root disable
	for u in $units; do
		if [ -f "$sd/enabled/$u" ]; then
			rm -f "$sd/enabled/$u"
			[ $quiet -eq 1 ] || echo "Removed \"/etc/systemd/system/multi-user.target.wants/$u\"." >&2
		fi
	done
	[ $reload -eq 0 ] || reload_all
	if [ $now_flag -eq 1 ]; then
		for u in $units; do stop_unit "$u" || rc=$?; done
	fi
	;;
start)
	need_units
	need_root start
	for u in $units; do start_unit "$u" || rc=$?; done
	;;
stop)
	need_units
	need_root stop
	for u in $units; do stop_unit "$u" || rc=$?; done
	;;
restart)
	need_units
	need_root restart
	for u in $units; do
		if ! load "$u"; then
			echo "Failed to restart $u: Unit $u not found." >&2
			rc=5
			continue
		fi
		stop_unit "$u" && start_unit "$u" || rc=$?
	done
	;;
is-active)
	need_units
	rc=3
	for u in $units; do
		state "$u"
		say "$_state"
		[ "$_state" = active ] && rc=0
	done
	;;
is-failed)
	need_units
	rc=1
	for u in $units; do
		state "$u"
		say "$_state"
		[ "$_state" = failed ] && rc=0
	done
	;;
is-enabled)
	need_units
	rc=1
	for u in $units; do
		if [ ! -f "$unitdir/$u" ]; then
			echo "Failed to get unit file state for $u: No such file or directory" >&2
		elif [ -f "$sd/enabled/$u" ]; then
			say enabled
			rc=0
		else
			say disabled
		fi
	done
	;;
status)
	need_units
	for u in $units; do
		if ! load "$u" 2>/dev/null; then
			echo "Unit $u could not be found." >&2
			rc=4
			continue
		fi
		state "$u"
		if [ -f "$sd/enabled/$u" ]; then e=enabled; else e=disabled; fi
		case $_state in
		active)
			since=
			IFS= read -r since <"$sd/active/$u"
			a="active (running) since $since"
			;;
		failed) a="failed (Result: exit-code)" ;;
		*) a="inactive (dead)" ;;
		esac
		parse_unit "$u" "$sd/loaded/$u"
		title "$u"
		echo "● $_title"
		echo "     Loaded: loaded (/etc/systemd/system/$u; $e; preset: enabled)"
		echo "     Active: $a"
		if can_read_journal && [ -s "$STATE/journal/$u" ]; then
			echo
			tail -n 10 "$STATE/journal/$u"
		fi
		[ "$_state" = active ] || [ $rc -ne 0 ] || rc=3
	done
	;;
'')
	echo "systemctl: verb required (the fake provider simulates no unit listing)" >&2
	rc=1
	;;
*)
	echo "Unknown command verb $verb." >&2
	rc=1
	;;
esac
exit $rc
