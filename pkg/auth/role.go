package auth

// Role is what a user may do.
type Role string

// Built-in roles.
const (
	RoleAdmin      Role = "admin"
	RoleSupervisor Role = "supervisor"
	RoleAgent      Role = "agent"
	RoleQA         Role = "qa"
)

// Roles lists the built-in roles.
var Roles = []Role{RoleAdmin, RoleSupervisor, RoleAgent, RoleQA}

// Valid reports whether r is a built-in role.
func (r Role) Valid() bool {
	for _, x := range Roles {
		if r == x {
			return true
		}
	}
	return false
}
