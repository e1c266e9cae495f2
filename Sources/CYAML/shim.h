// libyaml's event parser (the Settings module reads the config file through it).
#pragma once
#include <yaml.h>
