//! Sanctions and PEP screening and 115-FZ monitoring (built in a later stage).
