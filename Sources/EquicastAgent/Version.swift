/// The agent's version, reported by `equicastd version`, the control socket and the MIB.
public enum AgentVersion {
    public static let string = "0.1.0"
}
