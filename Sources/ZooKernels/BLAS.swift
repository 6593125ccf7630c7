// ZooKernels: CPU compute kernels (GEMM via a BLAS, convolutions, pooling, activations).
// Activations are channels-last (NHWC) float32 buffers; every kernel works on raw pointers.
#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif

/// The one door to the BLAS. Everything else in ZooKernels calls GEMM through here: OpenBLAS on
/// Linux (module CBLAS), Apple's Accelerate where it exists (the same CBLAS interface; untested: CI
/// runs Debian only).
@usableFromInline
enum BLAS {
    /// Pins the BLAS to one thread per call: ZooKernels splits work across its own threads,
    /// so BLAS threads would only oversubscribe the cores. Done once per process.
    static let configured: Bool = {
        #if !canImport(Accelerate)
        openblas_set_num_threads(1)
        #endif
        return true
    }()

    /// C[m, n] = A[m, k] * op(B) + beta * C, row-major. `transB`: B is stored [n, k].
    @inline(__always)
    static func gemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                     b: UnsafePointer<Float>, ldb: Int, transB: Bool,
                     c: UnsafeMutablePointer<Float>, ldc: Int, beta: Float = 0) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            if beta == 0 { for r in 0..<m { (c + r * ldc).update(repeating: 0, count: n) } }
            return
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y[m] = A[m, n] * x[n] (row-major A), y overwritten.
    @inline(__always)
    static func gemv(m: Int, n: Int, a: UnsafePointer<Float>, lda: Int, x: UnsafePointer<Float>,
                     y: UnsafeMutablePointer<Float>) {
        guard m > 0 else { return }
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(m), Int32(n), 1, a, Int32(lda), x, 1, 0, y, 1)
    }

    /// The name of the BLAS and the CPU kernel it picked.
    static var description: String {
        #if canImport(Accelerate)
        return "Accelerate"
        #else
        guard let name = openblas_get_corename() else { return "OpenBLAS" }
        return "OpenBLAS (\(String(cString: name)))"
        #endif
    }
}

/// General matrix multiplication through the package's BLAS (one thread per call, so results are
/// deterministic): the door the training engine uses for its convolution and linear layers.
public enum GEMM {
    /// C[m, n] = op(A) * op(B) + beta * C, row-major; op(A) is [m, k] (A stored [k, m] when `transA`),
    /// op(B) is [k, n] (B stored [n, k] when `transB`). Leading dimensions are the stored rows' lengths.
    public static func multiply(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, transA: Bool = false,
                                b: UnsafePointer<Float>, ldb: Int, transB: Bool = false,
                                c: UnsafeMutablePointer<Float>, ldc: Int, beta: Float = 0) {
        _ = BLAS.configured
        guard m > 0, n > 0 else { return }
        if k == 0 {
            for r in 0..<m {
                let row = c + r * ldc
                if beta == 0 { row.update(repeating: 0, count: n) } else { for j in 0..<n { row[j] *= beta } }
            }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

/// Process-wide facts about the compute backend.
public enum KernelBackend {
    /// Which BLAS is linked and the CPU kernel it chose (for benchmark reports).
    public static var blasDescription: String {
        _ = BLAS.configured
        return BLAS.description
    }

    /// Makes sure the BLAS runs single-threaded per call (ZooKernels threads on its own).
    public static func prepare() { _ = BLAS.configured }

    /// The linked BLAS's name: `OpenBLAS` on Linux, `Accelerate` on Apple platforms.
    public static var blasName: String {
        #if canImport(Accelerate)
        return "Accelerate"
        #else
        return "OpenBLAS"
        #endif
    }

    /// What the loaded OpenBLAS reports about itself, or nil with Accelerate.
    public static var openBLAS: OpenBLASDetails? {
        #if canImport(Accelerate)
        return nil
        #else
        _ = BLAS.configured
        return OpenBLASDetails(config: openblas_get_config().map { String(cString: $0) },
                               coreName: openblas_get_corename().map { String(cString: $0) },
                               threads: Int(openblas_get_num_threads()))
        #endif
    }

    /// The instruction set ZooKernels' own code (pooling, activations, depthwise and direct
    /// convolutions: Swift `SIMD8<Float>`) is compiled for. The package passes no `-march`/`-mcpu`
    /// flag and the kernels have no run-time dispatch, so this is the compiler's baseline for the
    /// target architecture; GEMM goes through the BLAS, which dispatches at run time (`openBLAS`).
    public static var kernelISA: String {
        #if arch(x86_64)
        return "x86-64 baseline (SSE2): Swift SIMD compiled without -march, no run-time dispatch; GEMM in the BLAS"
        #elseif arch(arm64)
        return "arm64 baseline (NEON): Swift SIMD compiled without -mcpu, no run-time dispatch; GEMM in the BLAS"
        #else
        return "the compiler's baseline for this architecture (no run-time dispatch); GEMM in the BLAS"
        #endif
    }
}

/// What the loaded OpenBLAS says about itself (for `zoo env`).
public struct OpenBLASDetails: Sendable, Equatable {
    /// Its build configuration (`openblas_get_config()`: version, DYNAMIC_ARCH, core, MAX_THREADS).
    public var config: String?
    /// The CPU kernel it chose for this machine at load time (`openblas_get_corename()`, e.g.
    /// `Haswell`, `SkylakeX`, `Cooperlake`).
    public var coreName: String?
    /// The threads it uses per call (`openblas_get_num_threads()`, 1 once ZooKernels pinned it).
    public var threads: Int
}
