;; plain.wat: a pass-through WATM v1 transport module (W.A.T.E.R., transport-module/spec/v1.md):
;; bytes cross unchanged in both directions. It reads no configuration.
;;
;; Roles: dialer (watm_dial_v1: the internal fd to the host's fixed remote via
;; water_dial_fixed), listener (watm_accept_v1: water_accept to the internal fd), relay
;; (watm_associate_v1: water_accept, then water_dial_fixed). watm_dial_fixed_v1 does what
;; watm_dial_v1 does: this module has no address of its own.
;;
;; Memory: 0-1023 scratch (iovecs, poll subscriptions/events, fdstat), 4096 the I/O buffer.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fd_fdstat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_set_flags" (func $fd_fdstat_set_flags (param i32 i32) (result i32)))
  (import "env" "water_dial_fixed" (func $water_dial_fixed (result i32)))
  (import "env" "water_accept" (func $water_accept (result i32)))

  (memory (export "memory") 2)

  (global $ctrl (mut i32) (i32.const -1))
  (global $src (mut i32) (i32.const -1)) ;; plaintext side (internal fd, or the relay's accepted one)
  (global $dst (mut i32) (i32.const -1)) ;; wire side

  (func (export "_start"))

  ;; O_NONBLOCK on, keeping the other flags.
  (func $nonblock (param $fd i32) (result i32)
    (local $e i32)
    (local.set $e (call $fd_fdstat_get (local.get $fd) (i32.const 704)))
    (if (local.get $e) (then (return (local.get $e))))
    (call $fd_fdstat_set_flags (local.get $fd)
      (i32.or (i32.load16_u (i32.const 706)) (i32.const 4))))

  ;; Waits until fd is writable (one fd_write subscription, no clock).
  (func $wait_writable (param $fd i32) (result i32)
    (i64.store (i32.const 400) (i64.const 9))
    (i32.store8 (i32.const 408) (i32.const 2))
    (i32.store (i32.const 416) (local.get $fd))
    (call $poll_oneoff (i32.const 400) (i32.const 512) (i32.const 1) (i32.const 640)))

  ;; Writes len bytes at ptr, waiting on EAGAIN. 0, or an errno.
  (func $write_all (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (local $e i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $len)))
        (i32.store (i32.const 8) (local.get $ptr))
        (i32.store (i32.const 12) (local.get $len))
        (local.set $e (call $fd_write (local.get $fd) (i32.const 8) (i32.const 1) (i32.const 20)))
        (if (i32.eq (local.get $e) (i32.const 6))
          (then
            (local.set $e (call $wait_writable (local.get $fd)))
            (if (local.get $e) (then (return (local.get $e))))
            (br $more)))
        (if (local.get $e) (then (return (local.get $e))))
        (local.set $ptr (i32.add (local.get $ptr) (i32.load (i32.const 20))))
        (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 20))))
        (br $more)))
    (i32.const 0))

  ;; Moves bytes from -> to until EAGAIN (0), end of stream (-1) or an error (its errno).
  (func $pump (param $from i32) (param $to i32) (param $inbound i32) (result i32)
    (local $e i32) (local $n i32)
    (loop $more
      (i32.store (i32.const 0) (i32.const 4096))
      (i32.store (i32.const 4) (i32.const 65536))
      (local.set $e (call $fd_read (local.get $from) (i32.const 0) (i32.const 1) (i32.const 16)))
      (if (i32.eq (local.get $e) (i32.const 6)) (then (return (i32.const 0))))
      (if (local.get $e) (then (return (local.get $e))))
      (local.set $n (i32.load (i32.const 16)))
      (if (i32.eqz (local.get $n)) (then (return (i32.const -1))))
      (local.set $e (call $write_all (local.get $to) (i32.const 4096) (local.get $n)))
      (if (local.get $e) (then (return (local.get $e))))
      (br $more))
    (i32.const 0))

  (func $sub_read (param $at i32) (param $fd i32)
    (i64.store (local.get $at) (i64.extend_i32_u (local.get $fd)))
    (i32.store8 (i32.add (local.get $at) (i32.const 8)) (i32.const 1))
    (i32.store (i32.add (local.get $at) (i32.const 16)) (local.get $fd)))

  (func (export "watm_init_v1") (result i32)
    (i32.const 0))

  (func (export "watm_ctrlpipe_v1") (param $fd i32) (result i32)
    (global.set $ctrl (local.get $fd))
    (call $nonblock (local.get $fd)))

  (func $dial (param $internal i32) (result i32)
    (local $fd i32)
    (global.set $src (local.get $internal))
    (local.set $fd (call $water_dial_fixed))
    (if (i32.lt_s (local.get $fd) (i32.const 0)) (then (return (local.get $fd))))
    (global.set $dst (local.get $fd))
    (drop (call $nonblock (global.get $src)))
    (drop (call $nonblock (global.get $dst)))
    (local.get $fd))

  (func (export "watm_dial_v1") (param $internal i32) (result i32)
    (call $dial (local.get $internal)))

  (func (export "watm_dial_fixed_v1") (param $internal i32) (result i32)
    (call $dial (local.get $internal)))

  (func (export "watm_accept_v1") (param $internal i32) (result i32)
    (local $fd i32)
    (global.set $src (local.get $internal))
    (local.set $fd (call $water_accept))
    (if (i32.lt_s (local.get $fd) (i32.const 0)) (then (return (local.get $fd))))
    (global.set $dst (local.get $fd))
    (drop (call $nonblock (global.get $src)))
    (drop (call $nonblock (global.get $dst)))
    (local.get $fd))

  (func (export "watm_associate_v1") (result i32)
    (local $fd i32)
    (local.set $fd (call $water_accept))
    (if (i32.lt_s (local.get $fd) (i32.const 0)) (then (return (i32.sub (i32.const 0) (local.get $fd)))))
    (global.set $src (local.get $fd))
    (local.set $fd (call $water_dial_fixed))
    (if (i32.lt_s (local.get $fd) (i32.const 0)) (then (return (i32.sub (i32.const 0) (local.get $fd)))))
    (global.set $dst (local.get $fd))
    (drop (call $nonblock (global.get $src)))
    (drop (call $nonblock (global.get $dst)))
    (i32.const 0))

  ;; The worker: poll the control pipe and both connections (no clock), then move bytes.
  ;; Returns 0 at the end of either stream, CANCELED (11) when the control pipe is readable.
  (func (export "watm_start_v1") (result i32)
    (local $e i32)
    (call $sub_read (i32.const 256) (global.get $ctrl))
    (call $sub_read (i32.const 304) (global.get $src))
    (call $sub_read (i32.const 352) (global.get $dst))
    (loop $poll
      (local.set $e (call $poll_oneoff (i32.const 256) (i32.const 512) (i32.const 3) (i32.const 640)))
      (if (local.get $e) (then (return (local.get $e))))
      (i32.store (i32.const 0) (i32.const 4096))
      (i32.store (i32.const 4) (i32.const 1))
      (if (i32.ne (call $fd_read (global.get $ctrl) (i32.const 0) (i32.const 1) (i32.const 16)) (i32.const 6))
        (then (return (i32.const 11))))
      (local.set $e (call $pump (global.get $src) (global.get $dst) (i32.const 0)))
      (if (i32.eq (local.get $e) (i32.const -1)) (then (return (i32.const 0))))
      (if (local.get $e) (then (return (local.get $e))))
      (local.set $e (call $pump (global.get $dst) (global.get $src) (i32.const 1)))
      (if (i32.eq (local.get $e) (i32.const -1)) (then (return (i32.const 0))))
      (if (local.get $e) (then (return (local.get $e))))
      (br $poll))
    (i32.const 0))
)
