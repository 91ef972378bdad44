import type { LinearMemory } from '../../tensor/memory.js';
import type { Kernels } from '../kernels.js';

type OptimKernels = Pick<Kernels, 'sgdStep' | 'adamStep'>;

const f = Math.fround;

/** PyTorch's single-tensor SGD and Adam/AdamW, rounding to float32 after every operation. */
export function optimReference(mem: LinearMemory): OptimKernels {
  return {
    sgdStep(p, g, buf, n, lr, momentum, dampening, weightDecay, nesterov, firstStep) {
      const v = mem.f32;
      const [lrf, mom, wd] = [f(lr), f(momentum), f(weightDecay)];
      const damp = f(1 - f(dampening));
      for (let i = 0; i < n; i++) {
        const pv = v[(p >>> 2) + i]!;
        let d = v[(g >>> 2) + i]!;
        if (wd !== 0) d = f(f(wd * pv) + d);
        if (mom !== 0) {
          const b = firstStep !== 0 ? d : f(f(damp * d) + f(v[(buf >>> 2) + i]! * mom));
          v[(buf >>> 2) + i] = b;
          d = nesterov !== 0 ? f(f(mom * b) + d) : b;
        }
        v[(p >>> 2) + i] = f(f(-lrf * d) + pv);
      }
    },
    adamStep(p, g, m, v2, n, lr, beta1, beta2, eps, weightDecay, decoupled, bc1, bc2) {
      const v = mem.f32;
      const [lrf, b2, epsf, wd] = [f(lr), f(beta2), f(eps), f(weightDecay)];
      const w1 = f(1 - f(beta1)), w2 = f(1 - b2);
      const shrink = wd !== 0 && decoupled !== 0 ? f(1 - f(lrf * wd)) : 1;
      const nstep = -f(lrf / f(bc1)), bc2sqrt = f(Math.sqrt(f(bc2)));
      for (let i = 0; i < n; i++) {
        let pv = v[(p >>> 2) + i]!;
        let gv = v[(g >>> 2) + i]!;
        if (wd !== 0 && decoupled === 0) gv = f(f(wd * pv) + gv);
        else pv = f(pv * shrink);
        const mo = v[(m >>> 2) + i]!;
        const mn = f(f(w1 * f(gv - mo)) + mo);
        const vn = f(f(f(w2 * gv) * gv) + f(v[(v2 >>> 2) + i]! * b2));
        v[(m >>> 2) + i] = mn;
        v[(v2 >>> 2) + i] = vn;
        const denom = f(f(f(Math.sqrt(vn)) / bc2sqrt) + epsf);
        v[(p >>> 2) + i] = f(f(nstep * f(mn / denom)) + pv);
      }
    },
  };
}
