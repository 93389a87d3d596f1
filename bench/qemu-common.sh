# bench/qemu-common.sh: the preamble the QEMU benchmarks share (sourced, from the repository
# root): that `npm run build` has been run, and the guest's pieces built where missing (the
# provisioned kernel and tools, bao_sim.ko, the image), under the same lock as
# qemu/run-tests.sh, so that benchmarks, tests and demos sharing qemu/out build one at a time.
#
#   . bench/qemu-common.sh
#   bench_prepare <name>     # <name> prefixes the error messages
#   bench_accel              # prints the accelerator the guest ran under (kvm, tcg), if probed

bench_prepare() {
  local name=$1 need
  for need in dist build/Release/bao.node; do
    [ -e "$need" ] || { echo "$name: $need is missing: run 'npm run build' first" >&2; exit 1; }
  done
  mkdir -p qemu/out
  (
    flock 9
    bash qemu/provision.sh >/dev/null
    make -s -C qemu/bao-sim >/dev/null
    bash qemu/build-image.sh
  ) 9>qemu/out/.build.lock
}

bench_accel() {
  echo "${BAO_QEMU_ACCEL:-$(cat qemu/out/kvm-probe.* 2>/dev/null | head -n1)}"
}
