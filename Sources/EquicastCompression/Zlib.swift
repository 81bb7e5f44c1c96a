import CZlib

/// Hard limits for inflating bytes that came from elsewhere.
public struct InflateLimits: Equatable, Sendable {
    /// Total output beyond which inflation stops with `outputLimitExceeded`. For a chunk this is the exact
    /// uncompressed size its signed manifest states.
    public var outputByteCountMax: Int
    /// Largest output/input ratio tolerated, judged against at least `ratioInputFloor` input bytes so that tiny
    /// inputs are not refused. nil turns the check off; do that only where `outputByteCountMax` is already exact.
    /// Deflate cannot exceed about 1032:1, so a limit at or above that never fires.
    public var ratioMax: Int?

    /// Inputs smaller than this are judged as if they were this large by the ratio check.
    public static let ratioInputFloor = 1024

    public init(outputByteCountMax: Int, ratioMax: Int?) {
        self.outputByteCountMax = outputByteCountMax
        self.ratioMax = ratioMax
    }

    /// For untrusted streams of unknown size: at most 16 MiB out, at most 200x growth.
    public static let untrusted = InflateLimits(outputByteCountMax: 16 << 20, ratioMax: 200)
}

/// Whole-buffer zlib (RFC 1950) compression, the format of every Equicast chunk.
public enum Zlib {
    /// Level used for release chunks: zlib's default, the usual size/speed balance for a build done once.
    public static let defaultLevel: Int32 = 6

    /// Compresses `input` into a complete zlib stream.
    public static func deflate(_ input: UnsafeRawBufferPointer, level: Int32 = defaultLevel) -> [UInt8] {
        let deflater = Deflater(level: level)
        var out: [UInt8] = []
        out.reserveCapacity(Int(compressBound(UInt(input.count))))
        deflater.compress(input, finish: true) { out.append(contentsOf: $0) }
        return out
    }

    public static func deflate(_ input: [UInt8], level: Int32 = defaultLevel) -> [UInt8] {
        input.withUnsafeBytes { deflate($0, level: level) }
    }

    /// Inflates a complete zlib stream, refusing truncation, trailing bytes and anything over `limits`.
    public static func inflate(_ input: UnsafeRawBufferPointer, limits: InflateLimits) throws(CompressionError)
        -> [UInt8]
    {
        let inflater = Inflater(limits: limits)
        var out: [UInt8] = []
        // Room for the usual case (a chunk inflating to the size its manifest states, at most 256 KiB) without
        // regrowing.
        out.reserveCapacity(min(limits.outputByteCountMax, 256 << 10))
        try inflater.decompress(input) { out.append(contentsOf: $0) }
        try inflater.finish()
        return out
    }

    public static func inflate(_ input: [UInt8], limits: InflateLimits) throws(CompressionError) -> [UInt8] {
        var result: [UInt8] = []
        var failure: CompressionError?
        input.withUnsafeBytes { raw in
            do throws(CompressionError) { result = try inflate(raw, limits: limits) } catch { failure = error }
        }
        if let failure { throw failure }
        return result
    }
}

/// Bytes zlib writes per call into our scratch buffer before handing them to the caller's sink.
let zlibScratchByteCount = 16 * 1024

/// Streaming deflate: feed input in pieces, receive compressed bytes through a sink. Memory stays at zlib's own
/// state (about 256 KiB at level 6 with default window) plus a 16 KiB scratch buffer, whatever the input size.
public final class Deflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private let scratch: UnsafeMutablePointer<UInt8>
    private var finished = false

    public init(level: Int32 = Zlib.defaultLevel) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        scratch = .allocate(capacity: zlibScratchByteCount)
        let status = deflateInit_(stream, level, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        // Only Z_MEM_ERROR or a stream/version mismatch can fail here, neither of which a caller can handle.
        precondition(status == Z_OK, "deflateInit failed")
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
        scratch.deallocate()
    }

    /// Compresses `input`; with `finish` the stream is closed and no more input is accepted.
    public func compress(_ input: UnsafeRawBufferPointer, finish: Bool, sink: (UnsafeRawBufferPointer) -> Void) {
        precondition(!finished, "Deflater used after finish")
        stream.pointee.next_in = UnsafeMutablePointer(
            mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        let flush = finish ? Z_FINISH : Z_NO_FLUSH
        while true {
            stream.pointee.next_out = scratch
            stream.pointee.avail_out = uInt(zlibScratchByteCount)
            let status = CZlib.deflate(stream, flush)
            let produced = zlibScratchByteCount - Int(stream.pointee.avail_out)
            if produced > 0 { sink(UnsafeRawBufferPointer(start: scratch, count: produced)) }
            if status == Z_STREAM_END { finished = true; break }
            // With input left or output space used up, zlib has more to do; otherwise it wants more input.
            if stream.pointee.avail_in == 0 && stream.pointee.avail_out != 0 && !finish { break }
        }
        stream.pointee.next_in = nil
    }

    public func compress(_ input: [UInt8], finish: Bool, sink: (UnsafeRawBufferPointer) -> Void) {
        input.withUnsafeBytes { compress($0, finish: finish, sink: sink) }
    }
}

/// Streaming inflate with hard limits: feed compressed pieces, receive output through a sink, and call `finish`
/// to require that the stream ended exactly there.
public final class Inflater {
    public let limits: InflateLimits
    private let stream: UnsafeMutablePointer<z_stream>
    private let scratch: UnsafeMutablePointer<UInt8>
    private var ended = false
    private var failed: CompressionError?
    /// Bytes consumed and produced so far.
    public private(set) var totalIn = 0
    public private(set) var totalOut = 0

    public init(limits: InflateLimits) {
        self.limits = limits
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        scratch = .allocate(capacity: zlibScratchByteCount)
        let status = inflateInit_(stream, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(status == Z_OK, "inflateInit failed")
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
        scratch.deallocate()
    }

    /// Inflates the next piece of input. After an error the inflater keeps failing with the same error.
    public func decompress(_ input: UnsafeRawBufferPointer, sink: (UnsafeRawBufferPointer) -> Void)
        throws(CompressionError)
    {
        if let failed { throw failed }
        if input.isEmpty { return }
        if ended { throw fail(.trailingData(count: input.count)) }
        stream.pointee.next_in = UnsafeMutablePointer(
            mutating: input.baseAddress!.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        defer { stream.pointee.next_in = nil }
        while true {
            // Never let zlib write past the output limit: offer at most what is left, plus one byte to detect
            // an attempt to go over.
            let room = limits.outputByteCountMax - totalOut
            let offer = min(zlibScratchByteCount, room + 1)
            stream.pointee.next_out = scratch
            stream.pointee.avail_out = uInt(offer)
            let before = Int(stream.pointee.avail_in)
            let status = CZlib.inflate(stream, Z_NO_FLUSH)
            let produced = offer - Int(stream.pointee.avail_out)
            totalIn += before - Int(stream.pointee.avail_in)
            switch status {
            case Z_OK, Z_STREAM_END, Z_BUF_ERROR:
                break
            case Z_DATA_ERROR, Z_NEED_DICT:
                throw fail(.corruptData(zlibMessage(status == Z_NEED_DICT ? "preset dictionary required" : nil)))
            default:
                throw fail(.libraryError(code: status))
            }
            if produced > room { throw fail(.outputLimitExceeded(limit: limits.outputByteCountMax)) }
            totalOut += produced
            if let ratioMax = limits.ratioMax,
                totalOut > ratioMax * max(totalIn, InflateLimits.ratioInputFloor)
            {
                throw fail(.ratioLimitExceeded(ratioMax: ratioMax))
            }
            if produced > 0 { sink(UnsafeRawBufferPointer(start: scratch, count: produced)) }
            if status == Z_STREAM_END {
                ended = true
                let left = Int(stream.pointee.avail_in)
                if left > 0 { throw fail(.trailingData(count: left)) }
                return
            }
            // Z_BUF_ERROR or no output room used up with all input consumed: zlib needs more input.
            if stream.pointee.avail_in == 0 && stream.pointee.avail_out != 0 { return }
            if status == Z_BUF_ERROR && produced == 0 { return }
        }
    }

    public func decompress(_ input: [UInt8], sink: (UnsafeRawBufferPointer) -> Void) throws(CompressionError) {
        var failure: CompressionError?
        input.withUnsafeBytes { raw in
            do throws(CompressionError) { try decompress(raw, sink: sink) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Requires that the input so far was one complete zlib stream.
    public func finish() throws(CompressionError) {
        if let failed { throw failed }
        if !ended { throw fail(.truncatedInput) }
    }

    private func fail(_ error: CompressionError) -> CompressionError {
        failed = error
        return error
    }

    private func zlibMessage(_ fallback: String?) -> String {
        if let fallback { return fallback }
        if let msg = stream.pointee.msg { return String(cString: msg) }
        return "invalid data"
    }
}
