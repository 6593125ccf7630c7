import CJPEG
import CPNG

/// The image libraries ZooImages decodes with, as this process sees them (for `zoo env`).
public enum ImageLibraries {
    /// The loaded libpng's version (`png_access_version_number()`, e.g. `1.6.39`): the run-time
    /// library's own answer, not the headers'.
    public static var pngVersion: String {
        let n = Int(png_access_version_number()) // 10639: major * 10000 + minor * 100 + release
        return "\(n / 10000).\(n / 100 % 100).\(n % 100)"
    }

    /// The libjpeg-turbo version of the headers ZooImages was built against
    /// (`LIBJPEG_TURBO_VERSION_NUMBER`, e.g. `2.1.5`), with the libjpeg API level it implements
    /// (`JPEG_LIB_VERSION`, `62`). libjpeg-turbo's libjpeg API has no run-time version query; the
    /// library the process loaded is named by `zoo env`'s `loaded_libraries`.
    public static var jpegTurboVersion: String {
        let n = Int(LIBJPEG_TURBO_VERSION_NUMBER)
        return "\(n / 1_000_000).\(n / 1000 % 1000).\(n % 1000) (libjpeg API \(Int(JPEG_LIB_VERSION)))"
    }
}
