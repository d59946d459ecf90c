# Helpers shared by the simulated server's stand-ins. Prepended to every
# stand-in after the generated prelude that sets ROOT (the simulated file
# system), STATE (the simulation's own state), HOST (the hostname) and
# UNIT_FAILS, and defines user_exists, user_nopasswd, group_exists and
# in_group from the cloud-config's users and groups.
#
# Every process counts: a simulated fleet runs thousands of these. The
# helpers use shell builtins only (no subshell, no sed, grep or cat) and
# set variables instead of printing; only the real programs a stand-in
# stands in front of (mv), date (once a run, when the journal is written)
# and, rarely, rm and readlink run as processes.

unset CDPATH
nl='
'

# me is the simulated user running this command: the SSH user, or the
# target of the sudo stand-in.
me=${HATCHERY_FAKE_USER:-root}

is_root() { [ "$me" = root ]; }

# now sets _now (as the journal prints time) and _since (as systemctl
# status does), once a run: one date process at most.
now() {
	[ -z "${_now:-}" ] || return 0
	_t=$(date '+%b %d %H:%M:%S|%a %Y-%m-%d %H:%M:%S %Z')
	_now=${_t%%|*}
	_since=${_t#*|}
}

# jlog UNIT MESSAGE... appends one line to UNIT's simulated journal.
jlog() {
	_u=$1
	shift
	now
	printf '%s %s %s\n' "$_now" "$HOST" "$*" >>"$STATE/journal/$_u"
}

# system_user NAME and system_group NAME: the users and groups of Debian
# 12's base system (a provider/nspawn image's /etc/passwd and /etc/group),
# which systemd finds for User= and Group= besides the cloud-config's.
system_user() {
	case $1 in
	root | daemon | bin | sys | sync | games | man | lp | mail | news | uucp | proxy | www-data | backup | list | irc | _apt | nobody | systemd-network | messagebus | sshd) return 0 ;;
	esac
	return 1
}

system_group() {
	case $1 in
	root | daemon | bin | sys | adm | tty | disk | lp | mail | news | uucp | man | proxy | kmem | dialout | fax | voice | cdrom | floppy | tape | sudo | audio | dip | www-data | backup | operator | list | irc | src | shadow | utmp | video | sasl | plugdev | staff | games | users | nogroup | systemd-journal | systemd-network | messagebus | _ssh) return 0 ;;
	esac
	return 1
}

# can_read_journal: root and members of adm or systemd-journal read the
# system journal, as on Debian.
can_read_journal() { is_root || in_group "$me" adm || in_group "$me" systemd-journal; }

# unit_name NAME sets _unit to NAME, with .service appended to a name
# without a unit type.
unit_name() {
	case $1 in
	*.service | *.socket | *.timer | *.target | *.path | *.mount | *.slice | *.scope) _unit=$1 ;;
	*) _unit=$1.service ;;
	esac
}

valid_unit() {
	case $1 in '' | */* | .* | *[!A-Za-z0-9@_.:-]*) return 1 ;; esac
	return 0
}

# base NAME sets _base to NAME's last component, as basename(1) prints it.
base() {
	_base=$1
	while :; do
		case $_base in
		/) break ;;
		*/) _base=${_base%/} ;;
		*) break ;;
		esac
	done
	case $_base in /) ;; *) _base=${_base##*/} ;; esac
}

# dir NAME sets _dir to NAME's directory, as dirname(1) prints it.
dir() {
	_dir=$1
	while :; do
		case $_dir in
		/) return 0 ;;
		*/) _dir=${_dir%/} ;;
		*) break ;;
		esac
	done
	case $_dir in
	*/*) _dir=${_dir%/*} ;;
	*) _dir=.; return 0 ;;
	esac
	while :; do
		case $_dir in
		*/) _dir=${_dir%/} ;;
		*) break ;;
		esac
	done
	[ -n "$_dir" ] || _dir=/
}

# physdir DIR sets _d to DIR's absolute physical path (symbolic links
# resolved); it fails when DIR is not a directory one can enter. It
# changes directory and back rather than run a subshell.
physdir() {
	if [ -z "${_start:-}" ]; then
		cd -P . 2>/dev/null || return 1
		_start=$PWD
	fi
	cd -P -- "$1" 2>/dev/null || return 1
	_d=$PWD
	cd -P -- "$_start"
}

# abspath FILE sets _abs to FILE's absolute physical path without
# resolving FILE itself (a symbolic link stays the link): the physical
# path of its directory, then its name. It fails when the directory does
# not exist.
abspath() {
	dir "$1"
	physdir "$_dir" || return 1
	base "$1"
	case $_base in
	/) _abs=/ ;;
	.) _abs=$_d ;;
	*) _abs=${_d%/}/$_base ;;
	esac
}

# copy SRC DST copies a text file with builtins (a unit file: no NUL
# bytes), keeping a last line without a newline as it is.
copy() {
	{
		while IFS= read -r _l; do printf '%s\n' "$_l"; done
		[ -z "$_l" ] || printf '%s' "$_l"
	} <"$1" >"$2"
}

# same A B: the text files have the same content (as cmp -s, for files
# without NUL bytes).
same() {
	# (a failed redirection of exec would end the shell)
	[ -r "$1" ] && [ -r "$2" ] || return 1
	exec 8<"$1" 9<"$2"
	while :; do
		_a=
		_b=
		IFS= read -r _a <&8
		_ra=$?
		IFS= read -r _b <&9
		_rb=$?
		if [ $_ra -ne $_rb ] || [ "$_a" != "$_b" ]; then
			exec 8<&- 9<&-
			return 1
		fi
		[ $_ra -eq 0 ] || break
	done
	exec 8<&- 9<&-
	return 0
}

# trim sets _v to $1 without its leading blanks.
trim() { _v=${1#"${1%%[![:space:]]*}"}; }

# value KEY: when the line _l (leading blanks trimmed) sets KEY (KEY, blanks,
# =, blanks, value), sets _v to the value.
value() {
	case $_l in "$1"*) ;; *) return 1 ;; esac
	trim "${_l#"$1"}"
	case $_v in =*) ;; *) return 1 ;; esac
	trim "${_v#=}"
}

# placeholder LINE sets _ph to the first __NAME__ in LINE (NAME: a capital
# letter, then capitals, digits and _), leftmost and longest as grep -o
# finds it; it fails when there is none.
placeholder() {
	_r=$1
	while :; do
		case $_r in *__[A-Z]*) ;; *) return 1 ;; esac
		_r=${_r#*_}
		case $_r in
		_[A-Z]*)
			_run=${_r#_}
			_run=${_run%%[!A-Z0-9_]*}
			_m=${_run%__*}
			if [ "$_m" != "$_run" ]; then
				_ph=__${_m}__
				return 0
			fi
			;;
		esac
	done
}
