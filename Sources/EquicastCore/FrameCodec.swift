import EquicastCrypto

/// Which transport a frame arrived on; the limits differ.
public enum FrameTransport {
    case datagram
    case stream
}

/// Seals outgoing frames for one sender.
public struct FrameSealer {
    public let sender: NodeID
    public var keyring: FleetKeyring
    /// `EncryptionEnabled` from the config: true seals bodies with XChaCha20-Poly1305; false sends them in the
    /// clear with a keyed BLAKE2b MAC (for debugging on a trusted network; never unauthenticated).
    public var encryptionEnabled: Bool

    public init(sender: NodeID, keyring: FleetKeyring, encryptionEnabled: Bool) {
        self.sender = sender
        self.keyring = keyring
        self.encryptionEnabled = encryptionEnabled
    }

    /// Builds a complete frame around `payload`. `nonce` must be 24 bytes that never repeat under this key;
    /// drivers draw them from the OS CSPRNG, the simulator from its seeded generator.
    public func seal(_ payload: [UInt8], messageClass: MessageClass, sequence: UInt64, nonce: [UInt8]) -> [UInt8] {
        precondition(nonce.count == XChaCha20Poly1305.nonceByteCount, "frame nonce must be 24 bytes")
        let key = keyring.primary
        let header = FrameHeader(
            messageClass: messageClass, flags: encryptionEnabled ? .encrypted : FrameFlags(rawValue: 0),
            keyID: key.keyID, sender: sender, sequence: sequence, nonce: nonce,
            bodyLength: UInt32(payload.count + Frame.tagByteCount))
        var w = ByteWriter(capacity: Frame.headerByteCount)
        header.encode(into: &w)
        let headerBytes = w.bytes
        var out: [UInt8] = []
        out.reserveCapacity(headerBytes.count + payload.count + Frame.tagByteCount)
        out.append(contentsOf: headerBytes)
        if encryptionEnabled {
            headerBytes.withUnsafeBytes { ad in
                payload.withUnsafeBytes { p in
                    nonce.withUnsafeBytes { n in
                        // Cannot fail: the nonce length was checked above.
                        try! XChaCha20Poly1305.seal(
                            p, additionalData: ad, nonce: n, key: key.aeadKey, appendingTo: &out)
                    }
                }
            }
        } else {
            out.append(contentsOf: payload)
            out.append(contentsOf: BLAKE2b.mac(out, key: key.macKey, outputByteCount: Frame.tagByteCount))
        }
        return out
    }
}

/// A frame that passed every check: known key, authentic, not replayed.
public struct OpenedFrame: Equatable {
    public let header: FrameHeader
    public let payload: [UInt8]
}

/// Opens incoming frames: bounds, version, key, authentication and replay checks, in that order. Replay state is
/// consulted before authentication (cheap refusal of duplicates) and updated only after it.
public struct FrameOpener {
    public var keyring: FleetKeyring
    /// When true (EncryptionEnabled=true), authenticated-only frames are refused: a peer cannot downgrade a node.
    public var requireEncryption: Bool
    public let limits: FrameLimits
    /// Replay windows per sender, one set for datagrams and one for stream frames: senders number the two
    /// separately, since a stream frame can wait behind bulk data in a TCP send queue while the same sender's
    /// datagrams overtake it (one shared window would refuse it as stale).
    public private(set) var replay: ReplayTable
    public private(set) var streamReplay: ReplayTable

    public init(keyring: FleetKeyring, requireEncryption: Bool, limits: FrameLimits = .standard, senderCapacity: Int) {
        self.keyring = keyring
        self.requireEncryption = requireEncryption
        self.limits = limits
        self.replay = ReplayTable(capacity: senderCapacity)
        self.streamReplay = ReplayTable(capacity: senderCapacity)
    }

    /// Decodes and authenticates one whole frame. `epochLimit`: the highest boot epoch (a sequence number's high
    /// 32 bits) the sender is known to have reached; a frame numbered in a later epoch is accepted but does not
    /// move the sender's replay window, so a fleet-key holder cannot push another node's window past anything
    /// that node will send (nil: the sender is not known, and no window is made for it).
    public mutating func open(
        _ bytes: [UInt8], transport: FrameTransport, epochLimit: UInt64? = .max
    ) throws(WireError) -> OpenedFrame {
        let bodyLimit =
            transport == .datagram ? limits.datagramBodyByteCountMax : limits.streamBodyByteCountMax
        if bytes.count > Frame.headerByteCount + bodyLimit {
            throw .lengthOverLimit(field: "frame", length: bytes.count, limit: Frame.headerByteCount + bodyLimit)
        }
        var r = ByteReader(bytes)
        let header = try FrameHeader.decode(&r, bodyLimit: bodyLimit)
        if r.remaining != Int(header.bodyLength) {
            throw .lengthMismatch(declared: Int(header.bodyLength), actual: r.remaining)
        }
        guard let key = keyring.key(id: header.keyID) else { throw .unknownKeyID(header.keyID) }
        let encrypted = header.flags.contains(.encrypted)
        if requireEncryption && !encrypted { throw .encryptionRequired(sender: header.sender) }
        let verdict =
            transport == .datagram
            ? replay.check(sender: header.sender, sequence: header.sequence)
            : streamReplay.check(sender: header.sender, sequence: header.sequence)
        switch verdict {
        case .fresh: break
        case .duplicate: throw .replayed(sender: header.sender, sequence: header.sequence)
        case .stale: throw .staleSequence(sender: header.sender, sequence: header.sequence)
        }
        let payload: [UInt8]
        if encrypted {
            var plain: [UInt8] = []
            plain.reserveCapacity(Int(header.bodyLength) - Frame.tagByteCount)
            let ok = bytes.withUnsafeBytes { all -> Bool in
                let ad = UnsafeRawBufferPointer(rebasing: all[0..<Frame.headerByteCount])
                let body = UnsafeRawBufferPointer(rebasing: all[Frame.headerByteCount...])
                return header.nonce.withUnsafeBytes { n -> Bool in
                    do throws(CryptoError) {
                        try XChaCha20Poly1305.open(
                            body, additionalData: ad, nonce: n, key: key.aeadKey, appendingTo: &plain)
                        return true
                    } catch {
                        return false
                    }
                }
            }
            if !ok { throw .authenticationFailed(sender: header.sender) }
            payload = plain
        } else {
            let macStart = bytes.count - Frame.tagByteCount
            let ok = bytes.withUnsafeBytes { all -> Bool in
                let expected = BLAKE2b.mac(
                    UnsafeRawBufferPointer(rebasing: all[0..<macStart]), key: key.macKey,
                    outputByteCount: Frame.tagByteCount)
                return expected.withUnsafeBytes { e in
                    constantTimeEqual(e, UnsafeRawBufferPointer(rebasing: all[macStart...]))
                }
            }
            if !ok { throw .authenticationFailed(sender: header.sender) }
            payload = Array(bytes[Frame.headerByteCount..<macStart])
        }
        guard let limit = epochLimit, header.sequence >> 32 <= limit else {
            return OpenedFrame(header: header, payload: payload)
        }
        if transport == .datagram {
            replay.record(sender: header.sender, sequence: header.sequence)
        } else {
            streamReplay.record(sender: header.sender, sequence: header.sequence)
        }
        return OpenedFrame(header: header, payload: payload)
    }

    /// Forgets a sender's replay window (it left the fleet for good).
    public mutating func forget(sender: NodeID) {
        replay.remove(sender: sender)
        streamReplay.remove(sender: sender)
    }
}

/// Splits a TCP byte stream into frames without trusting it: the header is validated as soon as it is complete,
/// so an oversized or garbage length is refused before any body is buffered.
public struct StreamFramer {
    public let bodyLimit: Int
    /// The key ids a frame may carry (the receiver's keyring); empty: any. A header naming another key ends the
    /// stream before its body is buffered, so a stranger cannot hold a connection with a plausible header.
    public let keyIDs: [UInt32]
    private var buffer: [UInt8] = []
    /// Where the bytes not yet returned as frames begin. Taking a frame moves it; the bytes before it are
    /// dropped at the next append, so a read that brought several frames moves the rest once, not per frame.
    private var start = 0

    public init(bodyLimit: Int = FrameLimits.standard.streamBodyByteCountMax, keyIDs: [UInt32] = []) {
        self.bodyLimit = bodyLimit
        self.keyIDs = keyIDs
    }

    /// Bytes held that do not yet form a complete frame.
    public var bufferedByteCount: Int { buffer.count - start }

    /// Bytes still missing before the frame in progress is complete (its header's, until the header is in),
    /// as far as the last `nextFrame` call could tell; at least 1.
    public var bytesToNextFrame: Int {
        if frameInProgress > 0 { return max(1, frameInProgress - bufferedByteCount) }
        return max(1, Frame.headerByteCount - bufferedByteCount)
    }
    /// Header and body size of the frame being received, once its header is in; 0 before.
    private var frameInProgress = 0

    public mutating func append(_ bytes: [UInt8]) {
        dropTaken()
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        dropTaken()
        buffer.append(contentsOf: bytes)
    }

    private mutating func dropTaken() {
        guard start > 0 else { return }
        buffer.removeFirst(start)
        start = 0
    }

    /// Header and body size of the frame at `start`, from its header (which must be buffered).
    private func frameByteCount() throws(WireError) -> Int {
        var r = ByteReader(buffer, range: start..<start + Frame.headerByteCount)
        let header = try FrameHeader.decode(&r, bodyLimit: bodyLimit)
        if !keyIDs.isEmpty && !keyIDs.contains(header.keyID) { throw .unknownKeyID(header.keyID) }
        return Frame.headerByteCount + Int(header.bodyLength)
    }

    /// The next complete frame (header and body), or nil when more bytes are needed. After an error the stream
    /// is out of sync and must be closed.
    public mutating func nextFrame() throws(WireError) -> [UInt8]? {
        if buffer.count - start < Frame.headerByteCount { return nil }
        let total = try frameByteCount()
        if buffer.count - start < total {
            // The frame's size is known now (and bounded by bodyLimit): room for all of it, so a 64 KiB chunk
            // arriving in small reads does not grow the buffer, and copy it, several times over. (Checked
            // first: reserving on a buffer a reader still shares would copy it on every read.)
            if buffer.capacity < start + total { buffer.reserveCapacity(start + total) }
            frameInProgress = total
            return nil
        }
        frameInProgress = 0
        if start == 0 && total == buffer.count {
            // The usual case, a buffer holding exactly one frame: it is handed over, not copied.
            let frame = buffer
            buffer = []
            return frame
        }
        let frame = Array(buffer[start..<start + total])
        start += total
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        return frame
    }
}
