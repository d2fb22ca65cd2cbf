#!/usr/bin/env bash
# One line naming this CPU for the bench tables: /proc/cpuinfo's model name (on these virtual
# machines often only "AMD EPYC" or "Intel(R) Xeon(R) Processor"), the family and model
# numbers that tell its generation, and the instruction sets our fast paths choose by.
set -euo pipefail
field() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo | cut -d: -f2- | xargs; }
flags=" $(field flags) "
have=()
for f in avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8; do
  if [[ $flags == *" $f "* ]]; then have+=("$f"); fi
done
echo "$(field 'model name') (family $(field 'cpu family') model $(field model); ${have[*]:-no AVX-512})"
