;; xor.wat: a WATM v1 transport module (W.A.T.E.R., transport-module/spec/v1.md) that XORs
;; every byte with a repeating key read from /conf/watm.cfg (trailing CR/LF removed; at most
;; 256 bytes). The key position runs on across reads, one position per direction, so the
;; transform is stream-safe: chunk boundaries do not matter, and the same key undoes it.
;;
;; Roles: dialer (watm_dial_v1: plaintext on the internal fd, XORed bytes to the host's fixed
;; remote via water_dial_fixed), listener (watm_accept_v1: XORed bytes from water_accept,
;; plaintext on the internal fd), relay (watm_associate_v1: water_accept, then
;; water_dial_fixed; bytes from the accepted side are XORed toward the dialed one and back).
;; watm_dial_fixed_v1 does what watm_dial_v1 does: this module has no address of its own.
;;
;; Memory: 0-1023 scratch (iovecs, poll subscriptions/events, fdstat), 1024 strings,
;; 2048 key (256 bytes), 4096 the I/O buffer (64 KiB).
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fd_fdstat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_set_flags" (func $fd_fdstat_set_flags (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "env" "water_dial_fixed" (func $water_dial_fixed (result i32)))
  (import "env" "water_accept" (func $water_accept (result i32)))

  (memory (export "memory") 2)
  (data (i32.const 1024) "watm.cfg")
  (data (i32.const 1040) "/conf")

  (global $ctrl (mut i32) (i32.const -1))
  (global $src (mut i32) (i32.const -1)) ;; plaintext side (internal fd, or the relay's accepted one)
  (global $dst (mut i32) (i32.const -1)) ;; wire side
  (global $keylen (mut i32) (i32.const 0))
  (global $kout (mut i32) (i32.const 0)) ;; key position, src -> dst
  (global $kin (mut i32) (i32.const 0))  ;; key position, dst -> src

  (func (export "_start"))

  ;; O_NONBLOCK on, keeping the other flags.
  (func $nonblock (param $fd i32) (result i32)
    (local $e i32)
    (local.set $e (call $fd_fdstat_get (local.get $fd) (i32.const 704)))
    (if (local.get $e) (then (return (local.get $e))))
    (call $fd_fdstat_set_flags (local.get $fd)
      (i32.or (i32.load16_u (i32.const 706)) (i32.const 4))))

  ;; Finds the preopened /conf, reads watm.cfg into the key buffer. 0, or an errno.
  (func $load_key (result i32)
    (local $fd i32) (local $cfg i32) (local $e i32) (local $n i32)
    (local.set $fd (i32.const 3))
    (block $found
      (loop $next
        (br_if $found (i32.ge_u (local.get $fd) (i32.const 32)))
        (if (i32.eqz (call $fd_prestat_get (local.get $fd) (i32.const 32)))
          (then
            (if (i32.eq (i32.load (i32.const 36)) (i32.const 5))
              (then
                (drop (call $fd_prestat_dir_name (local.get $fd) (i32.const 64) (i32.const 5)))
                (if (i32.and
                      (i32.eq (i32.load (i32.const 64)) (i32.load (i32.const 1040)))
                      (i32.eq (i32.load8_u (i32.const 68)) (i32.load8_u (i32.const 1044))))
                  (then (br $found)))))))
        (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
        (br $next)))
    (if (i32.ge_u (local.get $fd) (i32.const 32)) (then (return (i32.const 44)))) ;; NOENT
    (local.set $e (call $path_open (local.get $fd) (i32.const 0) (i32.const 1024) (i32.const 8)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 128)))
    (if (local.get $e) (then (return (local.get $e))))
    (local.set $cfg (i32.load (i32.const 128)))
    (i32.store (i32.const 0) (i32.const 2048))
    (i32.store (i32.const 4) (i32.const 256))
    (local.set $e (call $fd_read (local.get $cfg) (i32.const 0) (i32.const 1) (i32.const 16)))
    (drop (call $fd_close (local.get $cfg)))
    (if (local.get $e) (then (return (local.get $e))))
    (local.set $n (i32.load (i32.const 16)))
    (block $trimmed
      (loop $trim
        (br_if $trimmed (i32.eqz (local.get $n)))
        (br_if $trimmed (i32.and
          (i32.ne (i32.load8_u (i32.add (i32.const 2047) (local.get $n))) (i32.const 10))
          (i32.ne (i32.load8_u (i32.add (i32.const 2047) (local.get $n))) (i32.const 13))))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $trim)))
    (global.set $keylen (local.get $n))
    (i32.const 0))

  ;; XOR n bytes at ptr with the key, from the direction's position.
  (func $xor (param $ptr i32) (param $n i32) (param $inbound i32)
    (local $pos i32) (local $end i32)
    (if (i32.eqz (global.get $keylen)) (then (return)))
    (local.set $pos (select (global.get $kin) (global.get $kout) (local.get $inbound)))
    (local.set $end (i32.add (local.get $ptr) (local.get $n)))
    (block $done
      (loop $byte
        (br_if $done (i32.ge_u (local.get $ptr) (local.get $end)))
        (i32.store8 (local.get $ptr)
          (i32.xor (i32.load8_u (local.get $ptr))
                   (i32.load8_u (i32.add (i32.const 2048) (local.get $pos)))))
        (local.set $pos (i32.add (local.get $pos) (i32.const 1)))
        (if (i32.ge_u (local.get $pos) (global.get $keylen)) (then (local.set $pos (i32.const 0))))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
        (br $byte)))
    (if (local.get $inbound)
      (then (global.set $kin (local.get $pos)))
      (else (global.set $kout (local.get $pos)))))

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
      (call $xor (i32.const 4096) (local.get $n) (local.get $inbound))
      (local.set $e (call $write_all (local.get $to) (i32.const 4096) (local.get $n)))
      (if (local.get $e) (then (return (local.get $e))))
      (br $more))
    (i32.const 0))

  (func $sub_read (param $at i32) (param $fd i32)
    (i64.store (local.get $at) (i64.extend_i32_u (local.get $fd)))
    (i32.store8 (i32.add (local.get $at) (i32.const 8)) (i32.const 1))
    (i32.store (i32.add (local.get $at) (i32.const 16)) (local.get $fd)))

  (func (export "watm_init_v1") (result i32)
    (local $e i32)
    (local.set $e (call $load_key))
    (if (local.get $e) (then (return (local.get $e))))
    (if (i32.eqz (global.get $keylen)) (then (return (i32.const 28)))) ;; INVAL: no key
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
