;; A WebAssembly-text harness plugin that exercises each host function once per call.
;; Input: "<destination>\n<payload>" (destination "host:port", or a bare host for icmp).
;; Output: the bytes received (tcp, udp), the icmp_recv JSON (icmp), or "<fn>=0" when a host
;; function returned 0. Exports tcp, udp, icmp, tcp_twice (two connections, the second id),
;; trap (unreachable), spin (loops forever), grow (memory.grow until refused, then traps),
;; hoard (host blocks until refused, then traps) and fail (sets an Extism error).
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "env" "tcp_connect" (func $tcp_connect (param i64) (result i32)))
  (import "env" "tcp_send" (func $tcp_send (param i32 i64 i64) (result i32)))
  (import "env" "tcp_recv" (func $tcp_recv (param i32 i32) (result i64)))
  (import "env" "tcp_close" (func $tcp_close (param i32)))
  (import "env" "udp_connect" (func $udp_connect (param i64) (result i32)))
  (import "env" "udp_send" (func $udp_send (param i32 i64 i64) (result i32)))
  (import "env" "udp_recv" (func $udp_recv (param i32 i32) (result i64)))
  (import "env" "udp_close" (func $udp_close (param i32)))
  (import "env" "icmp_send" (func $icmp_send (param i64 i64 i64 i32) (result i32)))
  (import "env" "icmp_recv" (func $icmp_recv (param i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "tcp_connect=0tcp_recv=0udp_connect=0udp_recv=0icmp_send=0icmp_recv=0failed")
  (global $dest (mut i64) (i64.const 0))
  (global $payload (mut i64) (i64.const 0))
  (global $payload_len (mut i64) (i64.const 0))

  ;; Copies input bytes [from, to) into a new block.
  (func $copy_input (param $from i64) (param $to i64) (result i64)
    (local $block i64) (local $i i64)
    (local.set $block (call $alloc (i64.sub (local.get $to) (local.get $from))))
    (local.set $i (local.get $from))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $to)))
        (call $store_u8
          (i64.add (local.get $block) (i64.sub (local.get $i) (local.get $from)))
          (call $input_load_u8 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (local.get $block))

  ;; Splits the input at the first newline into $dest and $payload.
  (func $parse
    (local $len i64) (local $nl i64)
    (local.set $len (call $input_length))
    (local.set $nl (i64.const 0))
    (block $found
      (loop $scan
        (br_if $found (i64.ge_u (local.get $nl) (local.get $len)))
        (br_if $found (i32.eq (call $input_load_u8 (local.get $nl)) (i32.const 10)))
        (local.set $nl (i64.add (local.get $nl) (i64.const 1)))
        (br $scan)))
    (global.set $dest (call $copy_input (i64.const 0) (local.get $nl)))
    (if (i64.lt_u (local.get $nl) (local.get $len))
      (then (local.set $nl (i64.add (local.get $nl) (i64.const 1)))))
    (global.set $payload_len (i64.sub (local.get $len) (local.get $nl)))
    (global.set $payload (call $copy_input (local.get $nl) (local.get $len))))

  ;; Outputs memory bytes [at, at+len) (a message from the data segment).
  (func $say (param $at i32) (param $len i32)
    (local $block i64) (local $i i32)
    (local.set $block (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (call $store_u8 (i64.add (local.get $block) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (i32.add (local.get $at) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $output_set (local.get $block) (i64.extend_i32_u (local.get $len))))

  (func $output_block (param $block i64)
    (call $output_set (local.get $block) (call $length (local.get $block))))

  (func (export "tcp") (result i32)
    (local $id i32) (local $got i64)
    (call $parse)
    (local.set $id (call $tcp_connect (global.get $dest)))
    (if (i32.eqz (local.get $id)) (then (call $say (i32.const 0) (i32.const 13)) (return (i32.const 0))))
    (drop (call $tcp_send (local.get $id) (global.get $payload) (global.get $payload_len)))
    (local.set $got (call $tcp_recv (local.get $id) (i32.const 65536)))
    (call $tcp_close (local.get $id))
    (if (i64.eqz (local.get $got)) (then (call $say (i32.const 13) (i32.const 10)) (return (i32.const 0))))
    (call $output_block (local.get $got))
    (i32.const 0))

  (func (export "udp") (result i32)
    (local $id i32) (local $got i64)
    (call $parse)
    (local.set $id (call $udp_connect (global.get $dest)))
    (if (i32.eqz (local.get $id)) (then (call $say (i32.const 23) (i32.const 13)) (return (i32.const 0))))
    (drop (call $udp_send (local.get $id) (global.get $payload) (global.get $payload_len)))
    (local.set $got (call $udp_recv (local.get $id) (i32.const 65536)))
    (call $udp_close (local.get $id))
    (if (i64.eqz (local.get $got)) (then (call $say (i32.const 36) (i32.const 10)) (return (i32.const 0))))
    (call $output_block (local.get $got))
    (i32.const 0))

  (func (export "icmp") (result i32)
    (local $got i64)
    (call $parse)
    (if (i32.eqz (call $icmp_send (global.get $dest) (global.get $payload) (global.get $payload_len) (i32.const 7)))
      (then (call $say (i32.const 46) (i32.const 11)) (return (i32.const 0))))
    (local.set $got (call $icmp_recv (i32.const 2000)))
    (if (i64.eqz (local.get $got)) (then (call $say (i32.const 57) (i32.const 11)) (return (i32.const 0))))
    (call $output_block (local.get $got))
    (i32.const 0))

  ;; Opens TCP connections to the destination until one is refused; outputs how many opened.
  (func (export "tcp_many") (result i32)
    (local $n i32)
    (call $parse)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (call $tcp_connect (global.get $dest))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br_if $done (i32.ge_u (local.get $n) (i32.const 100)))
        (br $next)))
    (i32.store8 (i32.const 100) (i32.add (i32.const 48) (i32.rem_u (i32.div_u (local.get $n) (i32.const 10)) (i32.const 10))))
    (i32.store8 (i32.const 101) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
    (call $say (i32.const 100) (i32.const 2))
    (i32.const 0))

  (func (export "trap") (result i32) unreachable)
  (func (export "spin") (result i32) (loop $forever (br $forever)) (i32.const 0))
  (func (export "grow") (result i32)
    (loop $more (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable)
  (func (export "hoard") (result i32)
    (loop $more (br_if $more (i64.ne (call $alloc (i64.const 1048576)) (i64.const 0))))
    unreachable)
  (func (export "fail") (result i32)
    (local $block i64)
    (local.set $block (call $alloc (i64.const 6)))
    (call $store_u8 (local.get $block) (i32.const 102))
    (call $store_u8 (i64.add (local.get $block) (i64.const 1)) (i32.const 97))
    (call $store_u8 (i64.add (local.get $block) (i64.const 2)) (i32.const 105))
    (call $store_u8 (i64.add (local.get $block) (i64.const 3)) (i32.const 108))
    (call $store_u8 (i64.add (local.get $block) (i64.const 4)) (i32.const 101))
    (call $store_u8 (i64.add (local.get $block) (i64.const 5)) (i32.const 100))
    (call $error_set (local.get $block))
    (i32.const 1))
)
