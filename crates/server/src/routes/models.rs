//! `GET /v1/models` (the one served model) and `GET /v1/models/{id}` (404 for other ids).

use arle_api::{ModelCard, ModelList};
use axum::extract::{Path, State};
use axum::Json;

use crate::error::ApiError;
use crate::state::AppState;

fn card(state: &AppState) -> ModelCard {
    ModelCard {
        id: state.model_id.clone(),
        object: "model".to_owned(),
        created: state.created_unix,
        owned_by: "arle".to_owned(),
        max_model_len: Some(state.engine.model().max_context_tokens),
    }
}

pub async fn list(State(state): State<AppState>) -> Json<ModelList> {
    Json(ModelList {
        object: "list".to_owned(),
        data: vec![card(&state)],
    })
}

pub async fn retrieve(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
) -> Result<Json<ModelCard>, ApiError> {
    if model_id == state.model_id {
        Ok(Json(card(&state)))
    } else {
        Err(ApiError::model_not_found(&model_id))
    }
}
