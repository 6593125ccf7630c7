#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which kernels run convolutions, and in which activation layout.
///
/// `automatic` is what every model uses unless told otherwise; the other cases exist for tests and
/// comparisons (each must give the same numbers within the parity tolerance).
public enum ConvolutionBackend: String, Sendable, Hashable, CaseIterable {
    /// oneDNN where it has a JIT kernel for the convolution (Linux), ZooKernels' own kernels elsewhere;
    /// blocked activations between convolutions in graphs without depthwise convolutions, NHWC otherwise.
    case automatic
    /// ZooKernels' own kernels only (im2col + SGEMM, direct depthwise), NHWC.
    case own
    /// oneDNN where it can, NHWC activations everywhere.
    case oneDNNNHWC = "onednn-nhwc"
    /// oneDNN where it can, blocked activations between every pair of convolutions that take them.
    case oneDNNBlocked = "onednn-blocked"

    /// The process's default: `automatic`, unless the environment says otherwise
    /// (`ZOO_KERNELS=own`, or `ZOO_LAYOUT=nhwc` / `ZOO_LAYOUT=blocked`).
    public static let processDefault: ConvolutionBackend = {
        func env(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
        if env("ZOO_KERNELS") == "own" { return .own }
        switch env("ZOO_LAYOUT") {
        case "nhwc": return .oneDNNNHWC
        case "blocked": return .oneDNNBlocked
        default: return .automatic
        }
    }()

    /// True when this build can run convolutions through oneDNN (Linux with libdnnl) and it started.
    public static var oneDNNAvailable: Bool {
        #if canImport(CDNNL)
        return DNNLRuntime.shared != nil
        #else
        return false
        #endif
    }

    /// What runs convolutions with this choice: `oneDNN 2.6.0 (avx2)`, or `ZooKernels` (own kernels, or
    /// oneDNN unavailable).
    public var description: String {
        #if canImport(CDNNL)
        if usesOneDNN, let rt = DNNLRuntime.shared { return rt.description + (self == .automatic ? "" : ", \(rawValue)") }
        #endif
        return "ZooKernels"
    }

    /// The channel-blocked activation layout for this CPU (16 channels with AVX-512, else 8).
    public static var blockedLayout: ActivationLayout {
        #if canImport(CDNNL)
        return DNNLRuntime.shared?.blockedLayout ?? .blocked8
        #else
        return .blocked8
        #endif
    }

    /// True when this choice lets oneDNN run convolutions.
    public var usesOneDNN: Bool { self != .own }
}
