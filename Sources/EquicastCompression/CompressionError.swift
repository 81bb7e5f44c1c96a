/// Everything that can go wrong in EquicastCompression.
public enum CompressionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Inflating would produce more than the caller's hard output limit (a decompression bomb, or a chunk larger
    /// than its manifest says).
    case outputLimitExceeded(limit: Int)
    /// Output grew faster than `ratioMax` times the input consumed so far.
    case ratioLimitExceeded(ratioMax: Int)
    /// zlib found the input malformed (bad header, bad code, checksum mismatch).
    case corruptData(String)
    /// The input ended before the zlib stream did.
    case truncatedInput
    /// Bytes follow the end of the zlib stream.
    case trailingData(count: Int)
    /// zlib reported an error that is not about the data (out of memory, version mismatch).
    case libraryError(code: Int32)

    public var description: String {
        switch self {
        case .outputLimitExceeded(let limit):
            return "inflated output exceeds the limit of \(limit) bytes"
        case .ratioLimitExceeded(let ratio):
            return "inflated output grows more than \(ratio)x its input (decompression bomb?)"
        case .corruptData(let why):
            return "corrupt zlib data: \(why)"
        case .truncatedInput:
            return "zlib stream is truncated"
        case .trailingData(let count):
            return "\(count) unexpected bytes after the end of the zlib stream"
        case .libraryError(let code):
            return "zlib error \(code)"
        }
    }
}
