import CEquicastShims

/// The client side of the agent's control socket: one request line, then everything the agent writes back
/// until it closes. Used by the operator tool and the tests.
public enum ControlClient {
    /// Largest answer accepted (a member table of 16,384 rows is about 1.3 MB).
    public static let answerByteCountMax = 4 << 20

    public static func request(_ line: String, socket path: String) throws(PosixError) -> String {
        let fd = equicast_unix_connect(path)
        if fd < 0 {
            throw .file(path: path, operation: "connect to the agent's control socket", errno: equicast_errno())
        }
        defer { close(fd) }
        let bytes = Array((line + "\n").utf8)
        let sent = bytes.withUnsafeBytes { equicast_send(fd, $0.baseAddress!, $0.count) }
        if sent != bytes.count { throw .file(path: path, operation: "send request", errno: equicast_errno()) }
        let answer = try FileSystem.readAll(fd, path: path, expected: 0, limit: answerByteCountMax)
        return String(decoding: answer, as: UTF8.self)
    }
}
