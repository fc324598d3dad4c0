//! The fake's own tables of every object, property, type and variant it accepts. They are
//! the single source the fake validates requests with, and the conformance test walks them
//! against `tests/peers/stalwart-v0.16-schema.json`, so a field added here that upstream does
//! not have (or has with another type) fails the suite.

/// How a property may be written, as the schema's `update` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Settable on create and update.
    Mutable,
    /// Settable on create only.
    Immutable,
    /// Never settable by a client; the server fills it.
    ServerSet,
}

impl Update {
    /// The schema's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Update::Mutable => "mutable",
            Update::Immutable => "immutable",
            Update::ServerSet => "serverSet",
        }
    }
}

/// A property type, in the schema's vocabulary (`type`, `format`, `enumName`, `objectName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// `{"type": "string", "format": ...}`.
    Str(&'static str),
    /// `{"type": "boolean"}`.
    Bool,
    /// `{"type": "number", "format": ...}`; the fake accepts non-negative integers.
    Num(&'static str),
    /// `{"type": "utcDateTime"}`.
    DateTime,
    /// `{"type": "enum", "enumName": ...}` with the values the fake accepts.
    Enum(&'static str, &'static [&'static str]),
    /// `{"type": "objectId", "objectName": ...}`.
    Id(&'static str),
    /// `{"type": "set", "class": ...}`: on the wire `{"<value>": true, ...}`.
    Set(&'static Ty),
    /// `{"type": "objectList", "objectName": ...}`: on the wire `{"0": {...}, "1": {...}}`.
    List(&'static str),
    /// `{"type": "object", "objectName": ...}`.
    Object(&'static str),
    /// `{"type": "map", "keyClass": ..., "valueClass": ...}`.
    Map(&'static Ty, &'static Ty),
}

/// One property of a single (non-variant) schema.
#[derive(Debug, Clone, Copy)]
pub struct Prop {
    /// JSON name.
    pub name: &'static str,
    /// Type.
    pub ty: Ty,
    /// Whether `null` is a value.
    pub nullable: bool,
    /// Who may write it.
    pub update: Update,
    /// Refused as `validationFailed`/`Required` when absent or empty after the patch. The
    /// schema has no `required` flag; Stalwart's generated `validate()` requires exactly the
    /// non-nullable strings and object ids that have no default, which the conformance test
    /// checks against the schema.
    pub required: bool,
}

/// A single schema (`schemas[name].type == "single"`): a named set of properties.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// Schema name, e.g. `x:Domain` or `x:UserAccount`.
    pub name: &'static str,
    /// Properties the fake accepts or returns.
    pub props: &'static [Prop],
    /// Defaults the server fills on create, as JSON (each one is also checked against the
    /// schema's `defaults` where upstream lists it).
    pub defaults: &'static str,
}

impl Schema {
    /// The property called `name`.
    pub fn prop(&self, name: &str) -> Option<&'static Prop> {
        self.props.iter().find(|p| p.name == name)
    }
}

/// A variant schema (`schemas[name].type == "multiple"`), discriminated by `@type`.
#[derive(Debug, Clone, Copy)]
pub struct Variants {
    /// Schema name, e.g. `x:Account`.
    pub name: &'static str,
    /// `(variant, its schema)`; `None` for a variant without properties.
    pub variants: &'static [(&'static str, Option<&'static str>)],
}

const fn p(name: &'static str, ty: Ty) -> Prop {
    Prop {
        name,
        ty,
        nullable: false,
        update: Update::Mutable,
        required: false,
    }
}
const fn null(mut prop: Prop) -> Prop {
    prop.nullable = true;
    prop
}
const fn server(mut prop: Prop) -> Prop {
    prop.update = Update::ServerSet;
    prop
}
const fn req(mut prop: Prop) -> Prop {
    prop.required = true;
    prop
}

const STRING: Ty = Ty::Str("string");
const EMAIL: Ty = Ty::Str("emailAddress");

/// The DKIM algorithms (upstream's `DkimSignatureType`).
pub const DKIM_TYPES: &[&str] = &[
    "Dkim1Ed25519Sha256",
    "Dkim1RsaSha256",
    "Dkim2Ed25519Sha256",
    "Dkim2RsaSha256",
];

/// Permissions the fake accepts in permission lists: the ones an account freeze touches.
pub const PERMISSIONS: &[&str] = &[
    "authenticate",
    "emailSend",
    "emailReceive",
    "imapAuthenticate",
    "pop3Authenticate",
    "jmapEmailGet",
];

/// The network services (upstream's `ServiceProtocol`), in the order SystemSettings lists them.
pub const SERVICES: &[&str] = &[
    "caldav",
    "carddav",
    "imap",
    "jmap",
    "managesieve",
    "pop3",
    "smtp",
    "webdav",
];

static DKIM_TYPE: Ty = Ty::Enum("DkimSignatureType", DKIM_TYPES);
static PERMISSION: Ty = Ty::Enum("Permission", PERMISSIONS);
static SERVICE: Ty = Ty::Enum("ServiceProtocol", SERVICES);
static SERVICE_OBJECT: Ty = Ty::Object("x:Service");
static STRING_TY: Ty = STRING;
static EMAIL_TY: Ty = EMAIL;
static GROUP_ID: Ty = Ty::Id("x:Account/Group");

/// Every single schema the fake knows.
pub static SCHEMAS: &[Schema] = &[
    // JMAP for Contacts (RFC 9610), in a user's own account (`super::contacts`).
    Schema {
        name: "AddressBook",
        props: &[
            req(p("name", STRING)),
            null(p("description", STRING)),
            server(p("isDefault", Ty::Bool)),
            p("isSubscribed", Ty::Bool),
            p("sortOrder", Ty::Num("unsignedInteger")),
        ],
        defaults: r#"{"description": null, "isSubscribed": true, "sortOrder": 0}"#,
    },
    Schema {
        name: "x:Domain",
        props: &[
            req(p("name", STRING)),
            p("aliases", Ty::Set(&STRING_TY)),
            p("isEnabled", Ty::Bool),
            server(p("createdAt", Ty::DateTime)),
            null(p("description", STRING)),
            p(
                "certificateManagement",
                Ty::Object("x:CertificateManagement"),
            ),
            p("dkimManagement", Ty::Object("x:DkimManagement")),
            p("dnsManagement", Ty::Object("x:DnsManagement")),
            server(p("dnsZoneFile", Ty::Str("text"))),
            null(p("catchAllAddress", EMAIL)),
            p("subAddressing", Ty::Object("x:SubAddressing")),
            p("allowRelaying", Ty::Bool),
            null(p("reportAddressUri", STRING)),
        ],
        defaults: r#"{"aliases": {}, "isEnabled": true, "description": null,
            "certificateManagement": {"@type": "Manual"},
            "dkimManagement": {"@type": "Automatic"},
            "dnsManagement": {"@type": "Manual"},
            "catchAllAddress": null, "subAddressing": {"@type": "Enabled"},
            "allowRelaying": false, "reportAddressUri": "mailto:postmaster"}"#,
    },
    Schema {
        name: "x:DkimManagementProperties",
        props: &[
            p("algorithms", Ty::Set(&DKIM_TYPE)),
            p("selectorTemplate", STRING),
            p("rotateAfter", Ty::Num("duration")),
            p("retireAfter", Ty::Num("duration")),
            p("deleteAfter", Ty::Num("duration")),
        ],
        defaults: r#"{"algorithms": {"Dkim1Ed25519Sha256": true, "Dkim1RsaSha256": true},
            "selectorTemplate": "v{version}-{algorithm}-{date-%Y%m%d}",
            "rotateAfter": 7776000000, "retireAfter": 604800000, "deleteAfter": 2592000000}"#,
    },
    Schema {
        name: "x:UserAccount",
        props: &[
            req(p("name", STRING)),
            req(p("domainId", Ty::Id("x:Domain"))),
            server(p("emailAddress", EMAIL)),
            null(p("description", STRING)),
            p("aliases", Ty::List("x:EmailAlias")),
            p("credentials", Ty::List("x:Credential")),
            p("memberGroupIds", Ty::Set(&GROUP_ID)),
            p("permissions", Ty::Object("x:Permissions")),
            p("roles", Ty::Object("x:UserRoles")),
            server(p("createdAt", Ty::DateTime)),
            server(p("usedDiskQuota", Ty::Num("size"))),
        ],
        defaults: r#"{"description": null, "aliases": {}, "credentials": {},
            "memberGroupIds": {}, "permissions": {"@type": "Inherit"},
            "roles": {"@type": "User"}, "usedDiskQuota": 0}"#,
    },
    Schema {
        name: "x:GroupAccount",
        props: &[
            req(p("name", STRING)),
            req(p("domainId", Ty::Id("x:Domain"))),
            server(p("emailAddress", EMAIL)),
            null(p("description", STRING)),
            p("aliases", Ty::List("x:EmailAlias")),
            p("permissions", Ty::Object("x:Permissions")),
            p("roles", Ty::Object("x:Roles")),
            server(p("createdAt", Ty::DateTime)),
            server(p("usedDiskQuota", Ty::Num("size"))),
        ],
        defaults: r#"{"description": null, "aliases": {}, "permissions": {"@type": "Inherit"},
            "roles": {"@type": "Default"}, "usedDiskQuota": 0}"#,
    },
    Schema {
        name: "x:EmailAlias",
        props: &[
            req(p("name", STRING)),
            req(p("domainId", Ty::Id("x:Domain"))),
            p("enabled", Ty::Bool),
            null(p("description", STRING)),
        ],
        defaults: r#"{"enabled": true, "description": null}"#,
    },
    Schema {
        name: "x:PasswordCredential",
        props: &[
            server(p("credentialId", STRING)),
            req(p("secret", Ty::Str("secret"))),
            null(p("expiresAt", Ty::DateTime)),
        ],
        defaults: r#"{"expiresAt": null}"#,
    },
    Schema {
        name: "x:PermissionsList",
        props: &[
            p("enabledPermissions", Ty::Set(&PERMISSION)),
            p("disabledPermissions", Ty::Set(&PERMISSION)),
        ],
        defaults: r#"{"enabledPermissions": {}, "disabledPermissions": {}}"#,
    },
    Schema {
        name: "x:MailingList",
        props: &[
            req(p("name", STRING)),
            req(p("domainId", Ty::Id("x:Domain"))),
            server(p("emailAddress", EMAIL)),
            null(p("description", STRING)),
            p("aliases", Ty::List("x:EmailAlias")),
            p("recipients", Ty::Set(&EMAIL_TY)),
        ],
        defaults: r#"{"description": null, "aliases": {}, "recipients": {}}"#,
    },
    Schema {
        name: "x:Dkim1Signature",
        props: &[
            req(p("domainId", Ty::Id("x:Domain"))),
            req(p("selector", STRING)),
            p("privateKey", Ty::Object("x:SecretText")),
            server(p("publicKey", Ty::Str("text"))),
            p(
                "stage",
                Ty::Enum(
                    "DkimRotationStage",
                    &["active", "pending", "retiring", "retired"],
                ),
            ),
            null(p("nextTransitionAt", Ty::DateTime)),
            server(p("createdAt", Ty::DateTime)),
        ],
        defaults: r#"{"stage": "active", "nextTransitionAt": null}"#,
    },
    Schema {
        name: "x:Dkim2Signature",
        props: &[
            req(p("domainId", Ty::Id("x:Domain"))),
            req(p("selector", STRING)),
            p("privateKey", Ty::Object("x:SecretText")),
            server(p("publicKey", Ty::Str("text"))),
            p(
                "stage",
                Ty::Enum(
                    "DkimRotationStage",
                    &["active", "pending", "retiring", "retired"],
                ),
            ),
            null(p("nextTransitionAt", Ty::DateTime)),
            server(p("createdAt", Ty::DateTime)),
        ],
        defaults: r#"{"stage": "active", "nextTransitionAt": null}"#,
    },
    Schema {
        name: "x:SecretTextValue",
        props: &[p("secret", Ty::Str("secretText"))],
        defaults: "{}",
    },
    Schema {
        name: "x:SystemSettings",
        props: &[
            p("defaultHostname", STRING),
            p("defaultDomainId", Ty::Id("x:Domain")),
            p("mailExchangers", Ty::List("x:MailExchanger")),
            p("services", Ty::Map(&SERVICE, &SERVICE_OBJECT)),
        ],
        defaults: r#"{"mailExchangers": {"0": {"priority": 10}},
            "services": {"caldav": {"cleartext": false}, "carddav": {"cleartext": false},
            "imap": {"cleartext": false}, "jmap": {"cleartext": false},
            "managesieve": {"cleartext": false}, "pop3": {"cleartext": false},
            "smtp": {"cleartext": false}, "webdav": {"cleartext": false}}}"#,
    },
    Schema {
        name: "x:MailExchanger",
        props: &[
            null(p("hostname", STRING)),
            p("priority", Ty::Num("unsignedInteger")),
        ],
        defaults: r#"{"hostname": null, "priority": 10}"#,
    },
    Schema {
        name: "x:Service",
        props: &[p("cleartext", Ty::Bool), null(p("hostname", STRING))],
        defaults: r#"{"cleartext": false, "hostname": null}"#,
    },
];

/// Every variant schema the fake knows. A variant upstream has but the fake leaves out (ACME
/// certificates, automatic DNS, app passwords, …) is refused rather than half-modelled.
pub static VARIANTS: &[Variants] = &[
    Variants {
        name: "x:Account",
        variants: &[
            ("User", Some("x:UserAccount")),
            ("Group", Some("x:GroupAccount")),
        ],
    },
    Variants {
        name: "x:DkimSignature",
        variants: &[
            ("Dkim1Ed25519Sha256", Some("x:Dkim1Signature")),
            ("Dkim1RsaSha256", Some("x:Dkim1Signature")),
            ("Dkim2Ed25519Sha256", Some("x:Dkim2Signature")),
            ("Dkim2RsaSha256", Some("x:Dkim2Signature")),
        ],
    },
    Variants {
        name: "x:DkimManagement",
        variants: &[
            ("Automatic", Some("x:DkimManagementProperties")),
            ("Manual", None),
        ],
    },
    Variants {
        name: "x:CertificateManagement",
        variants: &[("Manual", None)],
    },
    Variants {
        name: "x:DnsManagement",
        variants: &[("Manual", None)],
    },
    Variants {
        name: "x:SubAddressing",
        variants: &[("Enabled", None), ("Disabled", None)],
    },
    Variants {
        name: "x:Credential",
        variants: &[("Password", Some("x:PasswordCredential"))],
    },
    Variants {
        name: "x:Permissions",
        variants: &[
            ("Inherit", None),
            ("Merge", Some("x:PermissionsList")),
            ("Replace", Some("x:PermissionsList")),
        ],
    },
    Variants {
        name: "x:UserRoles",
        variants: &[("User", None), ("Admin", None)],
    },
    Variants {
        name: "x:Roles",
        variants: &[("Default", None)],
    },
    Variants {
        name: "x:SecretText",
        variants: &[("Text", Some("x:SecretTextValue"))],
    },
];

/// The top-level objects the fake serves, with the schema (single or variant) behind each.
/// `(object, kind in the schema's objects table, schema name)`.
pub static OBJECTS: &[(&str, &str, &str)] = &[
    ("x:Domain", "object", "x:Domain"),
    ("x:Account", "object", "x:Account"),
    ("x:MailingList", "object", "x:MailingList"),
    ("x:DkimSignature", "object", "x:DkimSignature"),
    ("x:SystemSettings", "singleton", "x:SystemSettings"),
];

/// The single schema called `name`.
pub fn schema(name: &str) -> Option<&'static Schema> {
    SCHEMAS.iter().find(|s| s.name == name)
}

/// The variant schema called `name`.
pub fn variants(name: &str) -> Option<&'static Variants> {
    VARIANTS.iter().find(|v| v.name == name)
}
